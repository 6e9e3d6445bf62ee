"""Knowing a UID gives nothing: an upload carrying another user's StudyInstanceUID becomes
the uploader's own separate study, never a grant, never a change to the other study.

Each reproduction runs through both doors: the browser's chunked upload
(`/studies/upload/batches`, as static/js/upload.js sends it) and `qaportal import-study`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import Instance, Series, Study, StudyAccess, UploadBatch
from qaportal.studies.storage import image_store
from tests.factories import make_assignment, make_user
from tests.studyfiles import modified_copy

OWNER = "Olwen Stickleback"
PATIENT = "SENTINEL^OWNERPATIENT"
REPORT = "Original report of the owner: 6 mm nodule."
NOTES = "Clinical notes of the owner."
DOORS = ("browser", "cli")


@pytest.fixture
def owned(client, auth, tmp_path):
    """The owner's study S, uploaded in the browser with notes and a finalized report."""
    owner = make_user(["radiologist"], full_name=OWNER, email="owner@uid.test")
    db.session.commit()
    path = modified_copy("CT_small.dcm", tmp_path / "owner" / "ct.dcm", PatientName=PATIENT,
                         PatientID="SENTINELID01")
    auth.login(owner)
    with open(path, "rb") as fh:
        resp = client.post("/studies/upload", content_type="multipart/form-data",
                           data={"files": [(fh, "ct.dcm")], "report_text": REPORT,
                                 "finalize_now": "y", "clinical_history": NOTES})
    assert resp.status_code == 302, resp.data[:300]
    auth.logout()
    study = db.session.scalars(sa.select(Study)).one()
    assert study.read is not None and study.clinical_history == NOTES
    return owner, study, path


def _snapshot(study_id: int) -> dict:
    """What the owner's study holds: counters, and every instance with its stored file."""
    db.session.expire_all()
    study = db.session.get(Study, study_id)
    rows = db.session.execute(
        sa.select(Instance.id, Instance.sop_uid, Instance.storage_key, Instance.sha256)
        .join(Series).where(Series.study_id == study_id).order_by(Instance.id)).all()
    store = image_store()
    files = {r.storage_key: store.read_verified(r.storage_key, r.sha256) for r in rows}
    return {"counts": (study.series_count, study.instance_count, study.size_bytes),
            "instances": [tuple(r) for r in rows], "files": files,
            "owner": study.owner_id, "notes": study.clinical_history}


def _upload(door: str, client, auth, runner, user, path: Path) -> dict:
    """Upload one file as user through a door; return {stored, duplicates, conflicts, ...}."""
    if door == "cli":
        result = runner.invoke(args=["import-study", str(path), "--owner", user.email])
        summary = json.loads(result.output[: result.output.rindex("}") + 1])
        summary["exit"] = result.exit_code
        return summary
    auth.logout()
    auth.login(user)
    urls = client.post("/studies/upload/batches").get_json()
    with open(path, "rb") as fh:
        part = client.post(urls["files_url"], content_type="multipart/form-data",
                           data={"files": [(fh, f"exam/{path.name}")]})
    assert part.status_code == 200
    done = client.post(urls["finish_url"], data={})
    assert done.status_code == 200
    summary = client.get(done.get_json()["redirect"])
    assert summary.status_code == 200
    return {**part.get_json(), "summary_page": summary.get_data(as_text=True)}


def _own_copy(user, study: Study) -> Study:
    """The uploader's own study with the same UID: a separate study, theirs alone."""
    db.session.expire_all()
    copy = db.session.scalars(sa.select(Study).where(Study.owner_id == user.id)).one()
    assert copy.id != study.id and copy.study_uid == study.study_uid
    assert copy.instance_count == 1 and copy.read is None
    assert copy.clinical_history == "" and copy.pseudonym != study.pseudonym
    assert {s.study_id for s in copy.series} == {copy.id}
    return copy


def _batch_of(user) -> UploadBatch:
    return db.session.scalars(sa.select(UploadBatch).where(UploadBatch.user_id == user.id)).one()


def _assert_nothing_said(door: str, result: dict, copy: Study, owner_study: Study) -> None:
    """The upload reports the uploader's own copy only: stored, no duplicate, no conflict."""
    assert (result["stored"], result["duplicates"], result["conflicts"]) == (1, 0, 0)
    assert result["errors"] == []
    if door == "cli":
        assert result["exit"] == 0
        assert [s["id"] for s in result["studies"]] == [copy.id]
    else:
        page = result["summary_page"]
        assert f'"/studies/{copy.id}"' in page and f'"/studies/{owner_study.id}"' not in page
        assert PATIENT not in page
    assert _batch_of(copy.owner).study_ids == [copy.id]


def _intruder_sees_nothing(client, auth, intruder, study: Study) -> None:
    auth.logout()
    auth.login(intruder)
    for url in (f"/studies/{study.id}", f"/studies/{study.id}/viewer",
                f"/studies/{study.id}/deidentified.zip"):
        assert client.get(url).status_code == 404, url
    listing = client.get("/studies/").get_data(as_text=True)
    assert PATIENT not in listing and f'"/studies/{study.id}"' not in listing
    assert db.session.scalars(sa.select(StudyAccess).where(
        StudyAccess.user_id == intruder.id)).all() == []


@pytest.mark.parametrize("door", DOORS)
def test_a_new_file_with_someone_elses_study_uid_is_a_study_of_ones_own(
        app, client, auth, owned, door, tmp_path):
    owner, study, _ = owned
    before = _snapshot(study.id)
    intruder = make_user(["radiologist"], email="intruder@uid.test")
    db.session.commit()
    theirs = pydicom.dcmread(owned[2])
    path = modified_copy("CT_small.dcm", tmp_path / "intruder" / "mine.dcm",
                         StudyInstanceUID=study.study_uid,
                         SeriesInstanceUID=theirs.SeriesInstanceUID,
                         SOPInstanceUID=pydicom.uid.generate_uid(), PatientName="OTHER^ONE")
    result = _upload(door, client, auth, app.test_cli_runner(), intruder, path)
    _intruder_sees_nothing(client, auth, intruder, study)
    assert _snapshot(study.id) == before
    copy = _own_copy(intruder, study)
    _assert_nothing_said(door, result, copy, study)
    page = client.get(f"/studies/{copy.id}").get_data(as_text=True)
    for secret in (PATIENT, "SENTINELID01", REPORT, NOTES, OWNER):
        assert secret not in page, secret


@pytest.mark.parametrize("door", DOORS)
def test_an_identical_copy_of_someone_elses_file_is_a_study_of_ones_own(
        app, client, auth, owned, door):
    owner, study, path = owned
    before = _snapshot(study.id)
    intruder = make_user(["radiologist"], email="intruder@uid.test")
    db.session.commit()
    result = _upload(door, client, auth, app.test_cli_runner(), intruder, path)
    _intruder_sees_nothing(client, auth, intruder, study)
    assert _snapshot(study.id) == before
    copy = _own_copy(intruder, study)
    _assert_nothing_said(door, result, copy, study)
    # The intruder's copy is their own file, not a reference to the owner's.
    mine = db.session.scalars(sa.select(Instance).join(Series)
                              .where(Series.study_id == copy.id)).one()
    assert mine.storage_key not in before["files"]
    # The owner still sees only their own study, as before.
    auth.logout()
    auth.login(owner)
    assert client.get(f"/studies/{copy.id}").status_code == 404
    assert REPORT in client.get(f"/studies/{study.id}").get_data(as_text=True)


@pytest.mark.parametrize("door", DOORS)
def test_a_sop_uid_conflict_grants_nothing_and_confirms_nothing(
        app, client, auth, owned, door, tmp_path):
    owner, study, path = owned
    before = _snapshot(study.id)
    intruder = make_user(["radiologist"], email="intruder@uid.test")
    db.session.commit()
    # Same Study, Series and SOP Instance UIDs, other content: once "1 conflict, 0 stored".
    changed = tmp_path / "intruder" / "changed.dcm"
    changed.parent.mkdir()
    ds = pydicom.dcmread(path)
    ds.PatientName = "OTHER^TWO"
    ds.save_as(changed)
    result = _upload(door, client, auth, app.test_cli_runner(), intruder, changed)
    _intruder_sees_nothing(client, auth, intruder, study)
    assert _snapshot(study.id) == before
    copy = _own_copy(intruder, study)
    _assert_nothing_said(door, result, copy, study)


@pytest.mark.parametrize("door", DOORS)
def test_an_upload_never_unblinds_a_blind_reviewer(app, client, auth, owned, door, tmp_path):
    owner, study, path = owned
    reviewer = make_user(["reviewer", "radiologist"], email="blind@uid.test")
    assignment = make_assignment(study.read, reviewer, deidentified=True)
    db.session.commit()
    before = _snapshot(study.id)
    grants_before = [(g.study_id, g.mode, g.source_type, g.source_id)
                     for g in db.session.scalars(sa.select(StudyAccess).where(
                         StudyAccess.user_id == reviewer.id))]
    assert grants_before == [(study.id, "deidentified", "review_assignment", assignment.id)]
    fresh = modified_copy("CT_small.dcm", tmp_path / "reviewer" / "x.dcm",
                          StudyInstanceUID=study.study_uid,
                          SOPInstanceUID=pydicom.uid.generate_uid())
    for upload in (path, fresh):  # the owner's very file, and a new one in the study
        _upload(door, client, auth, app.test_cli_runner(), reviewer, upload)
    auth.logout()
    auth.login(reviewer)
    page = client.get(f"/studies/{study.id}").get_data(as_text=True)
    assert "Read by" not in page and OWNER not in page and REPORT not in page
    assert PATIENT not in page and "SENTINELID01" not in page  # still de-identified
    db.session.expire_all()
    assert [(g.study_id, g.mode, g.source_type, g.source_id)
            for g in db.session.scalars(sa.select(StudyAccess).where(
                StudyAccess.user_id == reviewer.id))] == grants_before
    assert _snapshot(study.id) == before
    copy = db.session.scalars(sa.select(Study).where(Study.owner_id == reviewer.id)).one()
    assert copy.id != study.id and copy.instance_count == 2 and copy.read is None


def test_qa_managers_see_both_copies_as_separate_studies(app, client, auth, owned, tmp_path):
    owner, study, path = owned
    intruder = make_user(["radiologist"], email="second@uid.test")
    qa = make_user(["qa_manager"])
    db.session.commit()
    _upload("cli", client, auth, app.test_cli_runner(), intruder, path)
    copy = _own_copy(intruder, study)
    auth.logout()
    auth.login(qa)
    assert REPORT in client.get(f"/studies/{study.id}").get_data(as_text=True)
    assert client.get(f"/studies/{copy.id}").status_code == 200


def test_legacy_import_finds_the_one_copy_that_was_read_and_refuses_ambiguity(app):
    """A legacy review names a study by UID; with copies per owner it must pick the copy
    with a finalized read, and refuse a UID that several read copies carry."""
    from qaportal.models import Review
    from qaportal.qa.legacy import import_legacy_reviews
    from tests.factories import make_study

    reader, second, third = (make_user(["radiologist"]) for _ in range(3))
    make_user(["reviewer"], email="legacy@uid.test")
    read = make_study(reader)
    copy = make_study(second, report=None)
    copy.study_uid = read.study_uid
    db.session.flush()
    line = f"study_uid,reviewer_email,score\n{read.study_uid},legacy@uid.test,2\n"
    result = import_legacy_reviews(line)
    assert (result.imported, result.errors) == (1, [])
    assert db.session.scalars(sa.select(Review)).one().assignment.read.study_id == read.id
    assert copy.read is None
    make_study(third).study_uid = read.study_uid  # a second copy with a finalized read
    db.session.flush()
    result = import_legacy_reviews(line.replace(",2\n", ",3\n"))
    assert result.imported == 0
    assert result.errors == [(2, "several studies with a finalized read have this study_uid")]
