"""STOW-RS (POST /dicomweb/studies[/{study}]): real files through the upload's ingest,
the PS3.18 response dataset element by element, status codes, refusals and cleanliness."""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import tracemalloc
from pathlib import Path

import pydicom
import pytest
import sqlalchemy as sa
from flask import g

from qaportal.dicom import generate_ct_series
from qaportal.extensions import db
from qaportal.jobs import queue, tasks
from qaportal.models import AuditEvent, Instance, Study, UploadBatch
from qaportal.studies import jobs
from tests.conftest import make_test_app
from tests.factories import DEFAULT_PASSWORD, make_user
from tests.studyfiles import (
    crashing_copies,
    deflate_bomb,
    one_fragment_copy,
    overlong_element_copy,
    sample,
    truncated_copy,
)

BOUNDARY = "stowBoundary0123456789"
CT = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
MiB = 1024 * 1024
URL = "/dicomweb/studies"
BASE = "http://localhost/dicomweb/studies"

RETRIEVE_URL, FAILED, REFERENCED = "00081190", "00081198", "00081199"
SOP_CLASS, SOP_INSTANCE, FAILURE_REASON = "00081150", "00081155", "00081197"


def related(parts, boundary=BOUNDARY, close=True) -> bytes:
    """A multipart/related body: each part is bytes (application/dicom) or (type, bytes)."""
    out = []
    for part in parts:
        ctype, data = part if isinstance(part, tuple) else ("application/dicom", part)
        head = f"--{boundary}\r\n" + (f"Content-Type: {ctype}\r\n" if ctype else "") + "\r\n"
        out.append(head.encode() + data + b"\r\n")
    if close:
        out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


def stow(client, parts, url=URL, **headers):
    headers = {"Content-Type": CT, "Accept": "application/dicom+json", **headers}
    return client.post(url, data=related(parts), headers=headers)


def read(path) -> bytes:
    return Path(path).read_bytes()


def uids(path) -> tuple[str, str, str, str]:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return ds.SOPClassUID, ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID


def meta_uids(path) -> tuple[str, str]:
    """The SOP Class and Instance UIDs of a file's meta group (what a refusal names)."""
    meta = pydicom.dcmread(path, stop_before_pixels=True).file_meta
    return meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID


def referenced(path) -> dict:
    """The Referenced SOP Sequence item the standard asks for a stored file."""
    sop_class, sop, study, series = uids(path)
    return {SOP_CLASS: {"vr": "UI", "Value": [sop_class]},
            SOP_INSTANCE: {"vr": "UI", "Value": [sop]},
            RETRIEVE_URL: {"vr": "UR",
                           "Value": [f"{BASE}/{study}/series/{series}/instances/{sop}"]}}


def failed(code: int, sop_class: str | None = None, sop: str | None = None) -> dict:
    def ui(v):
        return {"vr": "UI", "Value": [v]} if v else {"vr": "UI"}
    return {SOP_CLASS: ui(sop_class), SOP_INSTANCE: ui(sop),
            FAILURE_REASON: {"vr": "US", "Value": [code]}}


def count(model) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def stored_files(app) -> list[Path]:
    return [p for p in Path(app.config["IMAGE_ROOT"]).rglob("*") if p.is_file()]


def tmp_files(app) -> list[Path]:
    root = Path(app.config["UPLOAD_TMP"])
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.fixture
def radiologist(login_as):
    return login_as("radiologist")


def test_stores_real_files_and_answers_the_standard_dataset(app, client, radiologist,
                                                            tmp_path):
    series = generate_ct_series(tmp_path / "ct", slices=3, base=str(sample("CT_small.dcm")))
    files = [sample("MR_small.dcm"), *series]
    r = stow(client, [read(f) for f in files])
    assert r.status_code == 200
    assert r.mimetype == "application/dicom+json"
    study_uid = uids(series[0])[2]
    body = r.get_json()
    # Two studies in one request: no single study URL (Type 2, present and empty).
    assert body == {RETRIEVE_URL: {"vr": "UR"},
                    REFERENCED: {"vr": "SQ", "Value": [referenced(f) for f in files]}}
    # Stored as the upload stores: the caller's own studies, the bytes as sent, SHA-256.
    assert count(Instance) == 4
    for f in files:
        row = db.session.scalar(sa.select(Instance).where(Instance.sop_uid == uids(f)[1]))
        assert row.sha256 == hashlib.sha256(read(f)).hexdigest()
        assert row.series.study.owner_id == radiologist.id
    study = db.session.scalar(sa.select(Study).where(Study.study_uid == study_uid))
    assert (study.series_count, study.instance_count) == (1, 3)
    # One batch per request, marked as DICOMweb, finished, with what it stored.
    batch = db.session.scalar(sa.select(UploadBatch))
    assert (batch.user_id, batch.source, batch.stored, batch.errors) == (
        radiologist.id, "dicomweb", 4, [])
    assert batch.finished_at is not None and len(batch.study_ids) == 2
    actions = db.session.scalars(sa.select(AuditEvent.action)
                                 .where(AuditEvent.actor_id == radiologist.id)).all()
    assert actions.count("study.created") == 2
    assert "study.files_ingested" in actions
    finished = db.session.scalar(sa.select(AuditEvent)
                                 .where(AuditEvent.action == "study.upload_finished"))
    assert finished.details["via"] == "dicomweb" and finished.details["stored"] == 4
    assert tmp_files(app) == []  # every received file was moved into the store


def test_stored_instances_queue_their_metadata_for_the_worker(app, client, radiologist,
                                                              tmp_path):
    """STOW-RS spends no CPU on headers in the request (its throughput): it queues the job
    that computes them; without that job the first metadata request computes them."""
    series = generate_ct_series(tmp_path / "ct", slices=3, base=str(sample("CT_small.dcm")))
    cache = Path(app.config["CACHE_ROOT"]) / "dicomjson"
    assert stow(client, [read(f) for f in series]).status_code == 200
    assert list(cache.glob("??/*.json")) == []
    study = db.session.scalars(sa.select(Study).where(
        Study.study_uid == uids(series[0])[2])).one()
    queued = [tuple(t.args) for t in queue(app).huey.pending()
              if t.name == "qaportal.warm_metadata"]
    assert queued == [(study.id, radiologist.id)]
    tasks.warm_metadata(*queued[0])  # as the worker runs it
    assert len(list(cache.glob("??/*.json"))) == 3
    shutil.rmtree(cache)  # the job lost: the first request computes them as before
    assert len(client.get(f"/dicomweb/studies/{study.study_uid}/metadata").get_json()) == 3
    assert len(list(cache.glob("??/*.json"))) == 3


def test_one_study_url_and_json_when_asked(app, client, radiologist):
    r = stow(client, [read(sample("CT_small.dcm"))], Accept="application/json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    study = uids(sample("CT_small.dcm"))[2]
    assert r.get_json()[RETRIEVE_URL] == {"vr": "UR", "Value": [f"{BASE}/{study}"]}
    app.config["BASE_URL"] = "https://qa.example.org/"  # the configured address wins
    r = stow(client, [read(sample("CT_small.dcm"))])
    assert r.get_json()[RETRIEVE_URL]["Value"] == [
        f"https://qa.example.org/dicomweb/studies/{study}"]


def test_hostile_and_corrupt_files_fail_with_standard_reasons_beside_good_ones(
        app, client, radiologist, tmp_path):
    app.config["MAX_INFLATED_BYTES"] = 16 * MiB
    good = sample("MR_small.dcm")
    frames = one_fragment_copy(tmp_path / "frames-300000.dcm", 300_000)
    bomb = deflate_bomb(tmp_path / "bomb.dcm", 64 * MiB)
    overlong = overlong_element_copy("rtplan.dcm", tmp_path / "overlong.dcm")
    cut = truncated_copy("CT_small.dcm", tmp_path / "cut.dcm")
    crashing = crashing_copies(tmp_path / "crash")
    parts = [read(frames), read(bomb), read(good), read(overlong), read(cut),
             b"not a DICOM file at all", *(read(p) for p in crashing)]
    r = stow(client, parts)
    assert r.status_code == 202
    body = r.get_json()
    assert body[REFERENCED] == {"vr": "SQ", "Value": [referenced(good)]}
    # The refused files' own meta group names them where it can be read; resource limits
    # are 0xA700, what cannot be understood 0xC000.
    ct = meta_uids(sample("CT_small.dcm"))
    assert body[FAILED]["Value"][:4] == [failed(0xA700, *meta_uids(frames)),
                                         failed(0xA700, *ct),
                                         failed(0xC000, *meta_uids(sample("rtplan.dcm"))),
                                         failed(0xC000, *ct)]
    assert body[FAILED]["Value"][4] == failed(0xC000)
    assert [i[FAILURE_REASON]["Value"] for i in body[FAILED]["Value"][5:]] == [[0xC000]] * 3
    # The batch keeps the upload's own words for each part.
    batch = db.session.scalar(sa.select(UploadBatch))
    errors = {e["file"]: e["error"] for e in batch.errors}
    assert errors["part 1"] == ("too many frames: NumberOfFrames 300000 is over the limit "
                                "of 20000")
    assert errors["part 2"] == f"deflated data set inflates past the limit of {16 * MiB} bytes"
    assert errors["part 4"] == "truncated file: an element runs past the end of the data"
    assert errors["part 6"] == "not a DICOM file"
    assert "part 3" not in errors and len(errors) == 8
    assert batch.stored == 1 and count(Instance) == 1
    assert len(stored_files(app)) == 1 and tmp_files(app) == []
    # The owner finds the request among their uploads, with the reasons.
    page = client.get(f"/studies/upload/batches/{batch.id}").get_data(as_text=True)
    assert "Received through DICOMweb" in page
    assert "part 6" in page and "not a DICOM file" in page


def test_all_failed_is_409_and_leaves_no_file(app, client, radiologist):
    r = stow(client, [b"junk", b"more junk"])
    assert r.status_code == 409
    assert r.get_json() == {RETRIEVE_URL: {"vr": "UR"},
                            FAILED: {"vr": "SQ", "Value": [failed(0xC000)] * 2}}
    assert count(Instance) == 0 and stored_files(app) == [] and tmp_files(app) == []
    batch = db.session.scalar(sa.select(UploadBatch))
    assert batch.errors == [{"file": "part 1", "error": "not a DICOM file"},
                            {"file": "part 2", "error": "not a DICOM file"}]


def test_identical_resend_is_a_success_and_a_conflict_fails(app, client, radiologist,
                                                            tmp_path):
    ct = sample("CT_small.dcm")
    assert stow(client, [read(ct)]).status_code == 200
    again = stow(client, [read(ct)])
    assert again.status_code == 200
    assert again.get_json()[REFERENCED]["Value"] == [referenced(ct)]
    changed = pydicom.dcmread(ct)
    changed.StudyDescription = "same SOP Instance UID, other content"
    buf = io.BytesIO()
    changed.save_as(buf)
    conflict = stow(client, [buf.getvalue()])
    assert conflict.status_code == 409
    assert conflict.get_json()[FAILED]["Value"] == [failed(0x0111, *uids(ct)[:2])]
    batches = db.session.scalars(sa.select(UploadBatch).order_by(UploadBatch.id)).all()
    assert [(b.stored, b.duplicates, b.conflicts) for b in batches] == [
        (1, 0, 0), (0, 1, 0), (0, 0, 1)]
    assert count(Instance) == 1 and len(stored_files(app)) == 1


def test_target_study_refuses_other_studies_with_a900(app, client, radiologist):
    ct, mr = sample("CT_small.dcm"), sample("MR_small.dcm")
    target = uids(ct)[2]
    r = stow(client, [read(ct), read(mr)], url=f"{URL}/{target}")
    assert r.status_code == 202
    body = r.get_json()
    assert body[RETRIEVE_URL] == {"vr": "UR", "Value": [f"{BASE}/{target}"]}
    assert body[REFERENCED]["Value"] == [referenced(ct)]
    assert body[FAILED]["Value"] == [failed(0xA900, *uids(mr)[:2])]
    assert count(Instance) == 1 and len(stored_files(app)) == 1
    assert db.session.scalar(sa.select(UploadBatch)).errors == [
        {"file": "part 2", "error": "not stored: its StudyInstanceUID is not the study "
                                    "this request stores to"}]
    only_other = stow(client, [read(mr)], url=f"{URL}/{target}")
    assert only_other.status_code == 409


def test_another_users_study_uid_becomes_the_callers_own_copy(app, client, login_as,
                                                              tmp_path):
    other = make_user(roles=("radiologist",))
    db.session.commit()
    series = generate_ct_series(tmp_path / "ct", slices=2, base=str(sample("CT_small.dcm")))
    batch = jobs.new_batch(other, "cli")
    jobs.import_files([series[0]], other.id, batch.id)
    theirs = db.session.scalar(sa.select(Study))
    me = login_as("radiologist")
    r = stow(client, [read(p) for p in series], url=f"{URL}/{theirs.study_uid}")
    assert r.status_code == 200  # the same instance in their study is no duplicate of mine
    assert r.get_json()[REFERENCED]["Value"] == [referenced(p) for p in series]
    studies = db.session.scalars(sa.select(Study).order_by(Study.id)).all()
    assert [(s.owner_id, s.instance_count) for s in studies] == [(other.id, 1), (me.id, 2)]
    mine = db.session.scalar(sa.select(UploadBatch).where(UploadBatch.user_id == me.id))
    assert (mine.stored, mine.duplicates, mine.study_ids) == (2, 0, [studies[1].id])


def test_parts_of_another_type_fail_alone(client, radiologist):
    ct = sample("CT_small.dcm")
    r = stow(client, [("application/dicom+json", b"[]"), (None, read(ct)),
                      ("application/dicom; transfer-syntax=1.2.840.10008.1.2.1", read(ct))])
    assert r.status_code == 202
    body = r.get_json()
    assert body[FAILED]["Value"] == [failed(0xC000)]
    assert body[REFERENCED]["Value"] == [referenced(ct)] * 2  # the second is a duplicate


@pytest.mark.parametrize("content_type", [
    "application/dicom",
    'multipart/related; type="application/dicom+json"; boundary=x',
    f"multipart/form-data; boundary={BOUNDARY}",
    "",
])
def test_other_media_types_are_415(client, radiologist, content_type):
    r = client.post(URL, data=related([read(sample("CT_small.dcm"))]),
                    headers={"Content-Type": content_type})
    assert r.status_code == 415
    assert "multipart/related" in r.get_json()["error"]
    assert count(UploadBatch) == 0


def test_malformed_requests_are_400(client, radiologist):
    ct = read(sample("CT_small.dcm"))
    no_boundary = client.post(URL, data=related([ct]), headers={
        "Content-Type": 'multipart/related; type="application/dicom"'})
    assert no_boundary.status_code == 400 and "boundary" in no_boundary.get_json()["error"]
    bad_uid = stow(client, [ct], url=f"{URL}/not-a-uid")
    assert bad_uid.status_code == 400
    empty = client.post(URL, data=f"--{BOUNDARY}--\r\n", headers={"Content-Type": CT})
    assert empty.status_code == 400 and "no part" in empty.get_json()["error"]
    assert count(UploadBatch) == 0


def test_unacceptable_answer_type_is_406_before_reading(client, radiologist):
    r = stow(client, [read(sample("CT_small.dcm"))], Accept="application/dicom+xml")
    assert r.status_code == 406
    assert count(Instance) == 0 and count(UploadBatch) == 0


@pytest.mark.parametrize("cut", ["no closing boundary", "short of Content-Length"])
def test_a_body_cut_off_midway_leaves_nothing(app, client, radiologist, tmp_path, cut):
    files = generate_ct_series(tmp_path / "ct", slices=4, base=str(sample("CT_small.dcm")))
    body = related([read(f) for f in files], close=False)
    if cut == "no closing boundary":
        r = client.post(URL, data=body, headers={"Content-Type": CT})
    else:
        body = body[: len(body) - 3000]  # the last part is cut off inside its pixel data
        r = client.post(URL, input_stream=io.BytesIO(body), content_length=len(body) + 5000,
                        headers={"Content-Type": CT})
    assert r.status_code == 400
    assert r.is_json and r.get_json()["error"]
    assert count(Instance) == 0 and count(Study) == 0 and count(UploadBatch) == 0
    assert stored_files(app) == [] and tmp_files(app) == []


def test_a_part_over_the_file_limit_fails_alone(app, client, radiologist):
    app.config["UPLOAD_MAX_FILE_BYTES"] = 20_000
    ct, mr = sample("CT_small.dcm"), sample("MR_small.dcm")
    assert ct.stat().st_size > 20_000 > mr.stat().st_size
    r = stow(client, [read(ct), read(mr)])
    assert r.status_code == 202
    assert r.get_json()[FAILED]["Value"] == [failed(0xA700)]
    assert r.get_json()[REFERENCED]["Value"] == [referenced(mr)]
    batch = db.session.scalar(sa.select(UploadBatch))
    assert batch.errors == [{"file": "part 1",
                             "error": "too large: over the 0.019 MB limit per file"}]
    assert len(stored_files(app)) == 1 and tmp_files(app) == []


def test_a_request_over_max_content_length_is_413(app, client, radiologist):
    app.config["MAX_CONTENT_LENGTH"] = 10_000
    r = stow(client, [read(sample("CT_small.dcm"))])
    assert r.status_code == 413
    assert count(UploadBatch) == 0 and tmp_files(app) == []


def test_a_200_instance_request_streams_in_bounded_memory(app, client, radiologist,
                                                          tmp_path):
    files = generate_ct_series(tmp_path / "ct", slices=200)
    body_path = tmp_path / "body"
    with body_path.open("wb") as out:
        for f in files:
            out.write(f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode())
            out.write(read(f))
            out.write(b"\r\n")
        out.write(f"--{BOUNDARY}--\r\n".encode())
    size = body_path.stat().st_size
    assert size > 100 * MiB
    tracemalloc.start()
    try:
        with body_path.open("rb") as stream:
            r = client.post(URL, input_stream=stream, content_length=size,
                            headers={"Content-Type": CT})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    assert len(r.get_json()[REFERENCED]["Value"]) == 200
    assert count(Instance) == 200
    assert peak < 16 * MiB, f"peak {peak / MiB:.1f} MiB for a {size / MiB:.0f} MiB body"


@pytest.mark.parametrize("role", ["reviewer", "qa_manager", "admin"])
def test_only_roles_that_upload_may_store(client, login_as, role):
    login_as(role)
    r = stow(client, [read(sample("CT_small.dcm"))])
    assert r.status_code == 403
    assert count(Instance) == 0 and count(UploadBatch) == 0


def test_anonymous_is_401(client):
    assert stow(client, [read(sample("CT_small.dcm"))]).status_code == 401


@pytest.fixture
def csrf_app(tmp_path, db_url):
    app = make_test_app(tmp_path, db_url, WTF_CSRF_ENABLED=True)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def test_a_browser_session_needs_the_csrf_header(csrf_app):
    user = make_user(roles=("radiologist",))
    db.session.commit()
    client = csrf_app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    assert client.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD,
                                       "csrf_token": token}).status_code == 302
    g.pop("csrf_token", None)
    ct = read(sample("CT_small.dcm"))
    refused = stow(client, [ct])
    assert refused.status_code == 400 and "X-CSRFToken" in refused.get_json()["error"]
    assert count(Instance) == 0 and count(UploadBatch) == 0
    page = client.get("/studies/upload").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    assert stow(client, [ct], **{"X-CSRFToken": token}).status_code == 200


def test_dicomweb_client_stores_over_http_with_a_session(tmp_path, db_url):
    """The reference client, over real HTTP, signed in by session with the CSRF header."""
    import requests
    from dicomweb_client.api import DICOMwebClient

    from tests.e2e.conftest import LiveServer

    app = make_test_app(tmp_path, db_url, WTF_CSRF_ENABLED=True, TESTING=False)
    with app.app_context():
        user = make_user(roles=("radiologist",))
        db.session.commit()
        email = user.email
    server = LiveServer(app).start()
    try:
        session = requests.Session()
        page = session.get(f"{server.url}/login").text
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        assert session.post(f"{server.url}/login", allow_redirects=False, data={
            "email": email, "password": DEFAULT_PASSWORD, "csrf_token": token},
        ).status_code == 302
        page = session.get(f"{server.url}/studies/upload").text
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        client = DICOMwebClient(f"{server.url}/dicomweb", session=session,
                                headers={"X-CSRFToken": token})
        files = generate_ct_series(tmp_path / "ct", slices=5, base=str(sample("CT_small.dcm")))
        datasets = [pydicom.dcmread(f) for f in files]
        result = client.store_instances(datasets)
        assert [item.ReferencedSOPInstanceUID for item in result.ReferencedSOPSequence] == [
            ds.SOPInstanceUID for ds in datasets]
        assert "FailedSOPSequence" not in result
        study_uid = datasets[0].StudyInstanceUID
        # (the client sends its own Host header, without the port: the URL follows it)
        assert result.RetrieveURL.endswith(f"127.0.0.1/dicomweb/studies/{study_uid}")
        again = client.store_instances(datasets[:2], study_instance_uid=study_uid)
        assert len(again.ReferencedSOPSequence) == 2  # identical copies: a success
    finally:
        server.stop()
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Instance)) == 5
        db.session.remove()
        db.engine.dispose()


def test_a_token_with_the_write_scope_stores_without_csrf(csrf_app):
    from qaportal.auth import tokens

    user = make_user(roles=("radiologist",))
    writer = tokens.create(user, label="pacs", scopes=("read", "write"), expires_days=None,
                           by=user)
    reader = tokens.create(user, label="viewer", scopes=("read",), expires_days=None, by=user)
    db.session.commit()
    client = csrf_app.test_client()
    ct = read(sample("CT_small.dcm"))
    refused = stow(client, [ct], Authorization=f"Bearer {reader.secret}")
    assert refused.status_code == 403 and "write scope" in refused.get_json()["error"]
    assert count(UploadBatch) == 0
    r = stow(client, [ct], Authorization=f"Bearer {writer.secret}")
    assert r.status_code == 200
    assert r.get_json()[REFERENCED]["Value"] == [referenced(sample("CT_small.dcm"))]
    batch = db.session.scalar(sa.select(UploadBatch))
    assert (batch.user_id, batch.source, batch.stored) == (user.id, "dicomweb", 1)
    used = db.session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "api_token.used")).all()
    assert sorted(e.object_id for e in used) == sorted(
        [str(reader.token.id), str(writer.token.id)])  # every use audited, refused or not
