"""Delivery of a signed second opinion to a live peer: seconds from the signature's commit
to both result objects (Encapsulated PDF and Basic Text SR) stored by the peer.

Sets up a portal on SQLite in a temporary instance folder (or `--database-url`: an empty
PostgreSQL database the script may fill, emptied at the end), a stored study (a generated CT
of a few slices, imported as an upload), a known peer owned by the study's owner whose result
destination is dcmtk's `storescp` on a free loopback port writing to a temp folder, and the
real `qaportal worker` process. Then the consultant signs the opinion and, one after the
other, addenda (through the signing services, as the web page does); each time the script
waits for the delivery to be sent and reads the times: the commit (taken just before
`commit()` is called, so it includes the commit and the queueing), the worker's claim
(`deliveries.last_attempt_at`), the end of the case packet's render (its `report.exported`
audit entry) and the last object written by storescp (file mtime). Split: queue pickup
(commit -> claim), object build (claim -> PDF rendered and stored), send (the SR, the
association and both C-STOREs -> last file written).
Run from the repository root: `python benchmarks/delivery.py [--signatures 5] [--slices 4]
[--database-url URL]`. Target: every delivery within 5 s; a miss makes the exit status 1.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pydicom  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from qaportal import create_app  # noqa: E402
from qaportal.dicom import generate_ct_series  # noqa: E402
from qaportal.extensions import db  # noqa: E402
from qaportal.models import AuditEvent, Delivery, DicomPeer, Study  # noqa: E402
from qaportal.opinions import service, signing  # noqa: E402
from qaportal.studies import jobs  # noqa: E402
from tests.console import console_env  # noqa: E402
from tests.factories import (  # noqa: E402
    DEFAULT_PASSWORD,
    make_certification,
    make_opinion_request,
    make_user,
)
from tests.orthanc import free_port  # noqa: E402

TARGET_SECONDS = 5.0
PEER_AE = "BENCHPACS"
FILLED = {"findings": "Small hypodensity left insula.", "impression": "Early infarct.",
          "agreement": "minor", "recommendations": "", "coverage_answer": "",
          "coverage_text": ""}


def as_utc(value: datetime) -> datetime:
    """A database time as an aware UTC time (SQLite gives it back naive)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def make_app(root: Path, db_url: str | None):
    config = {"INSTANCE_PATH": str(root / "instance"), "SECRET_KEY": "bench-secret-key",
              "SQLALCHEMY_DATABASE_URI": db_url or f"sqlite:///{root / 'bench.sqlite'}",
              "LOCAL": True, "BASE_URL": "http://127.0.0.1:5000", "ARGON2_TIME_COST": 1,
              "ARGON2_MEMORY_KIB": 8, "ARGON2_PARALLELISM": 1}
    app = create_app(config)
    with app.app_context():
        if db_url and sa.inspect(db.engine).get_table_names():
            raise SystemExit("--database-url: the database is not empty; give an empty one")
        db.create_all()
    return app


def seed(root: Path, slices: int, port: int):
    """A requester owning a stored CT and the peer, a consultant holding the request."""
    a = make_user(licenses=["CA"], full_name="Dr Requester", email="requester@bench.test")
    b = make_user(subspecialties=["neuro"], licenses=["CA"], full_name="Dr Consultant",
                  email="consultant@bench.test")
    make_certification(b)
    db.session.add(DicomPeer(ae_title=PEER_AE, addresses=["127.0.0.1"], owner_id=a.id,
                             send_kind="dicom", send_host="127.0.0.1", send_port=port,
                             send_ae=PEER_AE))
    db.session.commit()
    generate_ct_series(root / "ct", slices=slices, patient=("BENCH^DELIVERY", "BENCHDLV1"))
    jobs.import_files([root / "ct"], a.id, jobs.new_batch(a, "cli").id)
    study = db.session.scalars(sa.select(Study).order_by(Study.id.desc())).first()
    study.jurisdiction = "CA"
    req = make_opinion_request(study, a, priority="urgent")
    service.claim(req, b)
    signing.save_draft(req, b, FILLED)
    db.session.commit()
    return b, req


def start_worker(app, root: Path) -> tuple[subprocess.Popen, Path]:
    """`qaportal worker --workers 2` on the benchmark's database and instance folder."""
    env = console_env(Path(app.instance_path),
                      QAPORTAL_DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
                      QAPORTAL_SECRET_KEY=app.config["SECRET_KEY"], QAPORTAL_LOCAL="1")
    log = root / "worker.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from qaportal.cli import main; "
             "sys.argv[0] = 'qaportal'; main()", "worker", "--workers", "2"],
            env=env, cwd=app.instance_path, stdout=out, stderr=subprocess.STDOUT)
    return proc, log


def wait(condition, proc: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        db.session.rollback()
        db.session.expire_all()
        if condition():
            return
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited ({proc.returncode}): {log.read_text()}")
        time.sleep(0.02)
    raise RuntimeError(f"not done in {seconds} s; worker log: {log.read_text()[-2000:]}")


def one_signature(req, b, number: int, received: Path, proc, log) -> dict[str, float]:
    """Sign the opinion (number 0) or an addendum; return the delivery's times in seconds."""
    if number == 0:
        signing.sign(req, b, DEFAULT_PASSWORD)
    else:
        signing.add_addendum(req, b, f"Addendum {number}: no change on review.",
                             DEFAULT_PASSWORD)
    committed = datetime.now(UTC)
    db.session.commit()
    row_id = db.session.scalars(sa.select(Delivery.id).order_by(Delivery.id.desc())).first()
    wait(lambda: db.session.get(Delivery, row_id).status in ("sent", "failed"), proc, log)
    row = db.session.get(Delivery, row_id)
    if row.status != "sent":
        raise RuntimeError(f"delivery {row_id} failed: {row.last_error}")
    files = {}
    for path in received.iterdir():
        files[str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)] = path
    missing = set(row.sop_instance_uids) - set(files)
    if missing or len(row.sop_instance_uids) != 2:
        raise RuntimeError(f"the peer lacks {len(missing)} of {row.sop_instance_uids}")
    stored = max(datetime.fromtimestamp(files[uid].stat().st_mtime, UTC)
                 for uid in row.sop_instance_uids)
    rendered = as_utc(db.session.scalars(
        sa.select(AuditEvent.occurred_at).where(AuditEvent.action == "report.exported")
        .order_by(AuditEvent.seq.desc())).first())
    claimed = as_utc(row.last_attempt_at)
    if not committed <= claimed <= rendered <= stored:
        raise RuntimeError(f"times out of order: {committed} {claimed} {rendered} {stored}")
    return {"total": (stored - committed).total_seconds(),
            "pickup": (claimed - committed).total_seconds(),
            "build": (rendered - claimed).total_seconds(),
            "send": (stored - rendered).total_seconds()}


def measure(root: Path, signatures: int, slices: int, db_url: str | None) -> list[dict]:
    received = root / "received"
    received.mkdir()
    port = free_port()
    peer = subprocess.Popen(["storescp", "--aetitle", PEER_AE, "--output-directory",
                             str(received), "+xa", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    app = make_app(root, db_url)
    proc = None
    try:
        with app.app_context():
            b, req = seed(root, slices, port)
            proc, log = start_worker(app, root)
            wait(lambda: "qaportal worker: " in log.read_text(), proc, log, 30)
            time.sleep(1)  # the start's sweep has run; the queue is idle
            figures = [one_signature(req, b, n, received, proc, log)
                       for n in range(signatures)]
            db.session.remove()
            if db_url:
                db.drop_all()
            db.engine.dispose()
        return figures
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)
        peer.terminate()
        peer.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signatures", type=int, default=5,
                        help="the opinion, then addenda (default 5: the opinion and 4)")
    parser.add_argument("--slices", type=int, default=4)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    if not shutil.which("storescp"):
        print("delivery not measured: Debian package dcmtk is not installed (no storescp)")
        return
    with tempfile.TemporaryDirectory(prefix="qaportal-delivery-") as tmp:
        figures = measure(Path(tmp), args.signatures, args.slices, args.database_url)
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(f"Delivery of a signed opinion to storescp on loopback ({backend}, SQLite queue, "
          f"{args.slices}-slice CT, worker with 2 threads):")
    for n, fig in enumerate(figures):
        what = "opinion   " if n == 0 else f"addendum {n}"
        print(f"  {what}: {fig['total']:.2f} s (pickup {fig['pickup']:.2f}, build "
              f"{fig['build']:.2f}, send {fig['send']:.2f})")
    totals = [f["total"] for f in figures]
    parts = {k: statistics.median(f[k] for f in figures) for k in ("pickup", "build", "send")}
    ok = max(totals) < TARGET_SECONDS
    print(f"median {statistics.median(totals):.2f} s, max {max(totals):.2f} s "
          f"(target < {TARGET_SECONDS:.0f} s: {'met' if ok else 'MISSED'}); median split: "
          f"pickup {parts['pickup']:.2f} s, build (PDF render) {parts['build']:.2f} s, "
          f"send {parts['send']:.2f} s")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
