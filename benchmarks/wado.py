"""WADO-RS in process (no HTTP, no Orthanc): series metadata and whole-study retrieve.

Run: .venv/bin/python benchmarks/wado.py [SLICES]   (default 500; a temp SQLite instance)
Ingests a generated CT series (from CT_small), then times series metadata cold (each
header parsed and cached) and warm (from the cache), and the study's retrieve as stored and
as Explicit VR Little Endian. The side by side with Orthanc is benchmarks/vs_orthanc.py.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DICOM = 'multipart/related; type="application/dicom"'


def main(slices: int) -> None:
    from pydicom.data import get_testdata_file

    from qaportal import create_app
    from qaportal.dicom import generate_ct_series
    from qaportal.extensions import db
    from qaportal.models import Study, User
    from qaportal.studies import jobs

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        app = create_app({
            "INSTANCE_PATH": str(root / "instance"), "SECRET_KEY": "bench-secret-key",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{root / 'bench.sqlite'}", "LOCAL": True,
            "WTF_CSRF_ENABLED": False, "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 8,
            "ARGON2_PARALLELISM": 1,
        })
        with app.app_context():
            db.create_all()
            from qaportal.passwords import hash_password

            owner = User(email="bench@example.org", full_name="Bench Radiologist",
                         password_hash=hash_password("bench-password-123"))
            owner.set_roles(("radiologist",))
            db.session.add(owner)
            db.session.commit()
            paths = generate_ct_series(root / "ct", slices=slices,
                                       base=get_testdata_file("CT_small.dcm"))
            run = jobs.import_files([(p.name, p) for p in paths], owner.id,
                                    jobs.new_batch(owner, "cli").id)
            (study_id,) = run.study_ids
            study = db.session.get(Study, study_id)
            client = app.test_client()
            client.post("/login", data={"email": owner.email, "password": "bench-password-123"})
            series = study.series[0]
            url = f"/dicomweb/studies/{study.study_uid}"
            cases = [("series metadata, cold", f"{url}/series/{series.series_uid}/metadata", None),
                     ("series metadata, warm", f"{url}/series/{series.series_uid}/metadata", None),
                     ("study retrieve, as stored", url, f"{DICOM}; transfer-syntax=*"),
                     ("study retrieve, default (EVRLE)", url, DICOM)]
            for label, target, accept in cases:
                start = time.perf_counter()
                response = client.get(target, headers={"Accept": accept} if accept else {})
                size = sum(len(chunk) for chunk in response.response)
                took = time.perf_counter() - start
                print(f"{label:34s} {response.status_code} {took * 1000:8.0f} ms "
                      f"{size / 1e6:8.1f} MB  {slices / took:8.0f} inst/s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
