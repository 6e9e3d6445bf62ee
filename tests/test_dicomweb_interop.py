"""Real DICOMweb peers against the portal served over real HTTP.

dicomweb-client (the Python reference client) stores pydicom's test files and a generated
series through STOW-RS, searches them with QIDO-RS and retrieves them with WADO-RS; the
pixel data that comes back is the pixel data that went in (SHA-256). Debian's Orthanc,
with its DICOMweb plugin, pushes a study to the portal, queries it and retrieves from it.
A blind reviewer's client sees only remapped UIDs and no identity of the patient.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
import requests
import sqlalchemy as sa
from dicomweb_client.api import DICOMwebClient
from PIL import Image

from qaportal.auth import tokens
from qaportal.dicom import generate_ct_series
from qaportal.extensions import db
from qaportal.models import Instance, OriginalRead, Series, Study, utcnow
from tests.conftest import make_test_app
from tests.factories import make_assignment, make_user
from tests.live import LiveServer
from tests.orthanc import Orthanc, Peer, unavailable
from tests.studyfiles import sample

STUDY_UID, SERIES_UID, SOP_UID = "0020000D", "0020000E", "00080018"


@dataclass
class Portal:
    app: object
    url: str

    @property
    def dicomweb(self) -> str:
        return self.url + "/dicomweb"


@pytest.fixture
def portal(tmp_path, db_url):
    """The app on its own database, served over HTTP on a loopback port, CSRF on."""
    app = make_test_app(tmp_path, db_url, WTF_CSRF_ENABLED=True, TESTING=False)
    server = LiveServer(app).start()
    try:
        yield Portal(app, server.url)
    finally:
        server.stop()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def new_user(portal: Portal, roles=("radiologist",), **kw) -> int:
    with portal.app.app_context():
        user = make_user(roles, **kw)
        db.session.commit()
        return user.id


def credentials(portal: Portal, user_id: int) -> dict[str, str]:
    """The header that authenticates the user to /dicomweb/: a new read+write API token."""
    with portal.app.app_context():
        from qaportal.models import User

        user = db.session.get(User, user_id)
        new = tokens.create(user, label="interop test", scopes=("read", "write"),
                            expires_days=None, by=user)
        db.session.commit()
        return {"Authorization": f"Bearer {new.secret}"}


def dicomweb_client(portal: Portal, headers: dict[str, str]) -> DICOMwebClient:
    session = requests.Session()
    session.trust_env = False  # loopback only
    return DICOMwebClient(url=portal.dicomweb, session=session, headers=headers, timeout=120)


def pixel_sha(ds: pydicom.Dataset) -> str:
    return hashlib.sha256(ds.PixelData).hexdigest()


def value(result: dict, tag: str):
    return result[tag]["Value"][0]


def by_sop(datasets) -> dict[str, str]:
    return {ds.SOPInstanceUID: pixel_sha(ds) for ds in datasets}


# --- dicomweb-client ---------------------------------------------------------------------

@pytest.fixture
def stored(portal, tmp_path):
    """pydicom's CT and MR samples and a generated 6-slice CT, stored by dicomweb-client."""
    uid = new_user(portal)
    client = dicomweb_client(portal, credentials(portal, uid))
    paths = [sample("CT_small.dcm"), sample("MR_small.dcm"),
             *generate_ct_series(tmp_path / "gen", slices=6, patient=("INTEROP^GEN", "IOP0001"))]
    datasets = [pydicom.dcmread(p) for p in paths]
    answer = client.store_instances(datasets)
    assert "FailedSOPSequence" not in answer or not answer.FailedSOPSequence
    assert {item.ReferencedSOPInstanceUID for item in answer.ReferencedSOPSequence} == \
        {ds.SOPInstanceUID for ds in datasets}
    return client, datasets


def test_dicomweb_client_stores_and_searches(stored, portal):
    client, datasets = stored
    generated = datasets[2:]
    study_uid, series_uid = generated[0].StudyInstanceUID, generated[0].SeriesInstanceUID

    studies = client.search_for_studies(search_filters={"PatientID": "IOP0001"})
    assert [value(s, STUDY_UID) for s in studies] == [study_uid]
    everything = client.search_for_studies()
    assert {value(s, STUDY_UID) for s in everything} == {ds.StudyInstanceUID for ds in datasets}
    named = client.search_for_studies(search_filters={"PatientName": "INTEROP^*"})
    assert [value(s, STUDY_UID) for s in named] == [study_uid]

    series = client.search_for_series(study_uid, search_filters={"Modality": "CT"})
    assert [value(s, SERIES_UID) for s in series] == [series_uid]
    instances = client.search_for_instances(study_uid, series_uid)
    assert {value(i, SOP_UID) for i in instances} == {ds.SOPInstanceUID for ds in generated}
    page = client.search_for_instances(study_uid, series_uid, limit=4, offset=4)
    assert len(page) == 2
    with portal.app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Instance)) == 8


def test_dicomweb_client_retrieves_what_it_stored(stored):
    client, datasets = stored
    generated = datasets[2:]
    study_uid, series_uid = generated[0].StudyInstanceUID, generated[0].SeriesInstanceUID
    first = generated[0]

    assert by_sop(client.retrieve_study(study_uid)) == by_sop(generated)
    assert by_sop(client.retrieve_series(study_uid, series_uid)) == by_sop(generated)
    ct = datasets[0]
    one = client.retrieve_instance(ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID)
    assert pixel_sha(one) == pixel_sha(ct) and one.PatientID == ct.PatientID

    metadata = client.retrieve_series_metadata(study_uid, series_uid)
    assert {value(m, SOP_UID) for m in metadata} == {ds.SOPInstanceUID for ds in generated}
    pixel = metadata[0].get("7FE00010", {})
    assert "InlineBinary" not in pixel  # large binary data is a BulkDataURI, or left out
    study_meta = client.retrieve_study_metadata(study_uid)
    assert len(study_meta) == len(generated)
    instance_meta = client.retrieve_instance_metadata(study_uid, series_uid, first.SOPInstanceUID)
    assert value(instance_meta, "00100020") == "IOP0001"

    frames = client.retrieve_instance_frames(study_uid, series_uid, first.SOPInstanceUID, [1])
    assert len(frames) == 1 and hashlib.sha256(frames[0]).hexdigest() == pixel_sha(first)

    png = client.retrieve_instance_rendered(study_uid, series_uid, first.SOPInstanceUID,
                                            media_types=("image/png",))
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (first.Columns, first.Rows)


# --- a blind reviewer ---------------------------------------------------------------------

SENTINELS = {"PatientName": "QXBLINDFAM^QXBLINDGIVEN", "PatientID": "QXBLINDMRN7731",
             "AccessionNumber": "QXBLINDACC9", "PatientBirthDate": "19590214",
             "InstitutionName": "Qxblind Memorial", "ReferringPhysicianName": "QXBLINDREF^A"}


@pytest.mark.parametrize("deidentified_grant", [True, False], ids=["deid-grant", "full-grant"])
def test_blind_reviewer_sees_only_remapped_data(portal, tmp_path, deidentified_grant):
    owner_id = new_user(portal)
    owner = dicomweb_client(portal, credentials(portal, owner_id))
    paths = generate_ct_series(tmp_path / "gen", slices=3, patient=("X^Y", "Z"))
    originals = [pydicom.dcmread(modified_copy_of(p, tmp_path, i)) for i, p in enumerate(paths)]
    owner.store_instances(originals)
    reviewer_id = new_user(portal, roles=("reviewer",))
    with portal.app.app_context():
        from qaportal.models import User

        study = db.session.scalars(sa.select(Study)).one()
        read = OriginalRead(study_id=study.id, reader_id=owner_id, report_text="No findings.",
                            finalized_at=utcnow(), entered_by_id=owner_id)
        db.session.add(read)
        db.session.flush()
        make_assignment(read, db.session.get(User, reviewer_id), deidentified=deidentified_grant)
        db.session.commit()
    client = dicomweb_client(portal, credentials(portal, reviewer_id))

    studies = client.search_for_studies(fields=["all"])
    assert len(studies) == 1
    seen_study = value(studies[0], STUDY_UID)
    series = client.search_for_series(seen_study)
    seen_series = value(series[0], SERIES_UID)
    instances = client.search_for_instances(seen_study, seen_series)
    metadata = client.retrieve_study_metadata(seen_study)
    retrieved = client.retrieve_study(seen_study)
    one = client.retrieve_instance(seen_study, seen_series, value(instances[0], SOP_UID))
    assert len(instances) == len(metadata) == len(retrieved) == 3

    text = json.dumps([studies, series, instances, metadata]).lower()
    text += "".join(str(ds).lower() + repr(ds.file_meta).lower() for ds in [*retrieved, one])
    raw = b"".join(_file_bytes(ds) for ds in [*retrieved, one]).lower()
    forbidden = [v.lower() for v in SENTINELS.values()]
    forbidden += ["qxblindfam", "qxblindgiven", "mrn7731"]
    originals_uids = {ds.StudyInstanceUID for ds in originals} | \
        {ds.SeriesInstanceUID for ds in originals} | {ds.SOPInstanceUID for ds in originals}
    for word in forbidden + sorted(originals_uids):
        assert word not in text, f"{word!r} reached the blind reviewer"
        assert word.encode() not in raw, f"{word!r} is in a retrieved file"
    assert seen_study.startswith("2.25.") and seen_series.startswith("2.25.")
    assert {ds.SOPInstanceUID for ds in retrieved} == {value(i, SOP_UID) for i in instances}
    assert all(uid.startswith("2.25.") for uid in (ds.SOPInstanceUID for ds in retrieved))
    # the pixels are the stored ones: de-identification leaves the image alone
    assert sorted(map(pixel_sha, retrieved)) == sorted(map(pixel_sha, originals))
    # the original UIDs answer 404 to this caller
    with pytest.raises(requests.HTTPError) as err:
        client.retrieve_study_metadata(originals[0].StudyInstanceUID)
    assert err.value.response.status_code == 404


def modified_copy_of(path: Path, tmp_path: Path, i: int) -> Path:
    ds = pydicom.dcmread(path)
    for keyword, val in SENTINELS.items():
        setattr(ds, keyword, val)
    out = tmp_path / "sentinel" / f"{i}.dcm"
    out.parent.mkdir(exist_ok=True)
    ds.save_as(out, enforce_file_format=True)
    return out


def _file_bytes(ds: pydicom.Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


# --- Orthanc as a peer ----------------------------------------------------------------------

needs_orthanc = pytest.mark.skipif(unavailable() is not None, reason=unavailable() or "")


@pytest.fixture
def orthanc_and_portal(portal, tmp_path):
    """Orthanc whose DICOMweb client knows the portal as "portal", with a user's credentials."""
    uid = new_user(portal)
    headers = credentials(portal, uid)
    peer = Peer(portal.dicomweb + "/", tuple(headers.items()))
    with Orthanc({"portal": peer}, folder=tmp_path / "orthanc") as orthanc:
        yield orthanc, dicomweb_client(portal, headers)


@needs_orthanc
@pytest.mark.slow
def test_orthanc_pushes_a_study_and_the_portal_holds_the_same_pixels(
        orthanc_and_portal, portal, tmp_path):
    orthanc, client = orthanc_and_portal
    paths = generate_ct_series(tmp_path / "gen", slices=12, patient=("ORTHANC^PUSH", "OPUSH1"))
    uploaded = [orthanc.upload(p.read_bytes()) for p in paths]
    orthanc_study = {u["ParentStudy"] for u in uploaded}
    assert len(orthanc_study) == 1 and all(u["Status"] == "Success" for u in uploaded)
    orthanc_study_id = orthanc_study.pop()

    orthanc.post("/dicom-web/servers/portal/stow",
                 {"Resources": [orthanc_study_id], "Synchronous": True})

    theirs, their_files = {}, {}
    for instance in orthanc.study_instances(orthanc_study_id):
        data = orthanc.instance_file(instance["ID"])
        ds = pydicom.dcmread(io.BytesIO(data))
        theirs[ds.SOPInstanceUID] = pixel_sha(ds)
        their_files[ds.SOPInstanceUID] = hashlib.sha256(data).hexdigest()
    assert len(theirs) == 12
    study_uid = pydicom.dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID
    assert by_sop(client.retrieve_study(study_uid)) == theirs
    with portal.app.app_context():
        study = db.session.scalars(sa.select(Study).where(Study.study_uid == study_uid)).one()
        assert (study.patient_id, study.instance_count) == ("OPUSH1", 12)
        # the files themselves arrived byte for byte (the SHA-256 the portal stored)
        ours = dict(db.session.execute(
            sa.select(Instance.sop_uid, Instance.sha256).join(Instance.series)
            .where(Series.study_id == study.id)).all())
        assert ours == their_files

    # Orthanc's DICOMweb client searches the portal (QIDO-RS); it answers in its own
    # simplified JSON, one string per "Value"
    found = orthanc.post("/dicom-web/servers/portal/qido",
                         {"Uri": "/studies", "Arguments": {"PatientID": "OPUSH1"}}).json()
    assert [s[STUDY_UID]["Value"] for s in found] == [study_uid]
    assert found[0]["00100020"]["Value"] == "OPUSH1"


@needs_orthanc
@pytest.mark.slow
def test_orthanc_retrieves_a_study_from_the_portal(orthanc_and_portal):
    orthanc, client = orthanc_and_portal
    mr = pydicom.dcmread(sample("MR_small.dcm"))
    client.store_instances([mr])
    assert orthanc.get("/studies").json() == []

    orthanc.post("/dicom-web/servers/portal/retrieve",
                 {"Resources": [{"Study": mr.StudyInstanceUID}], "Synchronous": True})

    [study_id] = orthanc.get("/studies").json()
    [instance] = orthanc.study_instances(study_id)
    got = pydicom.dcmread(io.BytesIO(orthanc.instance_file(instance["ID"])))
    assert got.SOPInstanceUID == mr.SOPInstanceUID and pixel_sha(got) == pixel_sha(mr)


# Orthanc 1.10's DICOMweb client writes a boundary of two UUIDs joined by a dash, 73
# characters, past RFC 2046's 70: refusing it would refuse every push from Orthanc.
ORTHANC_BOUNDARY = "392da653-9f3e-418f-96e1-7ef385967469-392da653-9f3e-418f-96e1-7ef385967469"


def test_stow_takes_the_boundary_orthanc_sends(app, client, login_as):
    login_as("radiologist")
    app.config["WTF_CSRF_ENABLED"] = False
    ct = pydicom.dcmread(sample("CT_small.dcm"))
    body = (f"--{ORTHANC_BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
            + sample("CT_small.dcm").read_bytes() + f"\r\n--{ORTHANC_BOUNDARY}--\r\n".encode())
    response = client.post("/dicomweb/studies", data=body, headers={
        "Content-Type": f'multipart/related; type="application/dicom"; '
                        f'boundary={ORTHANC_BOUNDARY}',
        "Accept": "application/dicom+json"})
    assert len(ORTHANC_BOUNDARY) == 73
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert db.session.scalars(sa.select(Instance.sop_uid)).all() == [ct.SOPInstanceUID]
