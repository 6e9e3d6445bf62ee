"""Study pages over HTTP: upload endpoints, access rules, notes and report, downloads."""

from __future__ import annotations

import io
import json
import zipfile

import pydicom
import pytest
import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import AuditEvent, Study, UploadBatch
from qaportal.studies.access import grant_access
from tests.factories import make_user
from tests.studyfiles import modified_copy, sample
from tests.studyfiles import post_upload as _upload

SENTINEL = "SENTINEL^PATIENTNAME"


@pytest.fixture
def owner_study(client, login_as, tmp_path):
    owner = login_as("radiologist")
    path = modified_copy("CT_small.dcm", tmp_path / "ct.dcm", PatientName=SENTINEL,
                         PatientID="SENTINELID")
    _upload(client, path, report_text="Original report text.", finalize_now="y")
    return owner, db.session.scalars(sa.select(Study)).one()


def test_batch_endpoints_report_each_file(client, login_as, tmp_path):
    login_as("radiologist")
    created = client.post("/studies/upload/batches")
    assert created.status_code == 201
    urls = created.get_json()
    junk = tmp_path / "junk.txt"
    junk.write_text("x")
    with open(sample("CT_small.dcm"), "rb") as a, open(junk, "rb") as b:
        res = client.post(urls["files_url"], data={"files": [(a, "dir/CT.dcm"), (b, "junk.txt")]},
                          content_type="multipart/form-data")
    body = res.get_json()
    assert body["stored"] == 1
    assert {"file": "junk.txt", "error": "not a DICOM file"} in body["errors"]
    assert {"file": "dir/CT.dcm", "status": "stored"} in body["results"]
    done = client.post(urls["finish_url"], data={"jurisdiction": "NY"})
    assert done.status_code == 200
    summary = client.get(done.get_json()["redirect"]).get_data(as_text=True)
    assert "junk.txt" in summary and "not a DICOM file" in summary
    assert db.session.scalars(sa.select(Study)).one().jurisdiction == "NY"


def test_someone_elses_batch_is_404(client, auth, login_as, app):
    other = make_user(roles=("radiologist",))
    db.session.commit()
    batch = UploadBatch(user_id=other.id)
    db.session.add(batch)
    db.session.commit()
    login_as("radiologist")
    assert client.get(f"/studies/upload/batches/{batch.id}").status_code == 404
    assert client.post(f"/studies/upload/batches/{batch.id}/files").status_code == 404


def test_reviewer_without_radiologist_role_cannot_upload(client, login_as):
    login_as("reviewer")
    assert client.get("/studies/upload").status_code == 403


def test_unrelated_user_gets_404_everywhere(client, auth, owner_study):
    _, study = owner_study
    auth.logout()
    stranger = make_user(roles=("radiologist", "reviewer"))
    db.session.commit()
    auth.login(stranger)
    for url in (f"/studies/{study.id}", f"/studies/{study.id}/edit",
                f"/studies/{study.id}/deidentified.zip"):
        assert client.get(url).status_code == 404, url
    assert study.patient_name not in client.get("/studies/").get_data(as_text=True)


def test_qa_manager_sees_the_study(client, auth, owner_study):
    _, study = owner_study
    auth.logout()
    qa = make_user(roles=("qa_manager",))
    db.session.commit()
    auth.login(qa)
    assert "SENTINEL, PATIENTNAME" in client.get(f"/studies/{study.id}").get_data(as_text=True)


def test_deidentified_grant_shows_no_identifiers(client, auth, owner_study):
    owner, study = owner_study
    consultant = make_user(roles=("radiologist",))
    grant_access(study, consultant, mode="deidentified", source=("test", 1), by=owner)
    db.session.commit()
    auth.logout()
    auth.login(consultant)
    page = client.get(f"/studies/{study.id}").get_data(as_text=True)
    assert "SENTINEL" not in page and study.pseudonym in page
    assert "Original report text." not in page  # the original read is not part of the share
    listing = client.get("/studies/").get_data(as_text=True)
    assert "SENTINEL" not in listing


def test_study_view_and_download_are_audited_without_patient_data(client, owner_study):
    _, study = owner_study
    client.get(f"/studies/{study.id}")
    client.get(f"/studies/{study.id}/deidentified.zip")
    events = db.session.scalars(sa.select(AuditEvent).where(
        AuditEvent.object_type == "studies", AuditEvent.object_id == str(study.id))).all()
    actions = {e.action for e in events}
    assert {"study.viewed", "study.downloaded"} <= actions
    for e in db.session.scalars(sa.select(AuditEvent)):
        assert "SENTINEL" not in str(e.details) and "SENTINEL" not in (e.object_id or "")


def test_deidentified_zip_has_no_identifiers(client, owner_study):
    _, study = owner_study
    res = client.get(f"/studies/{study.id}/deidentified.zip?retain_dates=y")
    assert res.status_code == 200
    with zipfile.ZipFile(io.BytesIO(res.data)) as zf:
        names = zf.namelist()
        assert any(n.endswith("DEIDENTIFICATION.txt") for n in names)
        dcm = [n for n in names if n.endswith(".dcm")]
        assert len(dcm) == 1
        raw = zf.read(dcm[0])
    assert b"SENTINEL" not in raw
    assert raw[:128] == bytes(128) and raw[128:132] == b"DICM"  # served copies: no preamble
    ds = pydicom.dcmread(io.BytesIO(raw))
    assert ds.PatientIdentityRemoved == "YES" and str(ds.PatientName) == study.pseudonym


def test_notes_and_report_editing_and_final_report_is_immutable(client, owner_study):
    owner, study = owner_study
    page = client.post(f"/studies/{study.id}/edit", data={
        "jurisdiction": "TX", "clinical_question": "Q?", "clinical_history": "H.",
        "report_text": "Changed text.", "reader_id": str(owner.id),
    })
    assert page.status_code == 200  # re-rendered with the error, typed values kept
    text = page.get_data(as_text=True)
    assert "final and can no longer be changed" in text
    db.session.refresh(study)
    assert study.read.report_text == "Original report text."
    ok = client.post(f"/studies/{study.id}/edit", data={
        "jurisdiction": "TX", "clinical_question": "Q?", "clinical_history": "H.",
        "report_text": "Original report text.", "reader_id": str(owner.id),
    })
    assert ok.status_code == 302
    db.session.refresh(study)
    assert (study.jurisdiction, study.clinical_question) == ("TX", "Q?")


def test_invalid_jurisdiction_keeps_typed_values(client, owner_study):
    owner, study = owner_study
    page = client.post(f"/studies/{study.id}/edit", data={
        "jurisdiction": "not a code", "clinical_question": "Typed question",
        "report_text": "Original report text.", "reader_id": str(owner.id),
    })
    text = page.get_data(as_text=True)
    assert "Use a code such as CA" in text and "Typed question" in text


def test_other_radiologist_with_full_grant_cannot_edit(client, auth, owner_study):
    owner, study = owner_study
    colleague = make_user(roles=("radiologist",))
    grant_access(study, colleague, mode="full", source=("test", 2), by=owner)
    db.session.commit()
    auth.logout()
    auth.login(colleague)
    assert client.get(f"/studies/{study.id}").status_code == 200
    assert client.get(f"/studies/{study.id}/edit").status_code == 403


def test_owner_sees_who_has_access(client, owner_study):
    owner, study = owner_study
    colleague = make_user(roles=("radiologist",), full_name="Dr Colleague Granted")
    grant_access(study, colleague, mode="deidentified", source=("opinion_request", 3), by=owner)
    db.session.commit()
    page = client.get(f"/studies/{study.id}").get_data(as_text=True)
    assert "Who has access" in page and "Dr Colleague Granted" in page


def test_blind_review_grant_hides_reader_and_report(client, auth, owner_study):
    owner, study = owner_study
    reviewer = make_user(roles=("reviewer",))
    grant_access(study, reviewer, mode="full", source=("review_assignment", 1), by=owner)
    db.session.commit()
    auth.logout()
    auth.login(reviewer)
    page = client.get(f"/studies/{study.id}").get_data(as_text=True)
    assert page.count("Original report text.") == 0
    assert owner.full_name not in page and "Who has access" not in page


def test_request_over_the_size_limit_gets_a_clear_json_error(app, client, login_as):
    app.config["MAX_CONTENT_LENGTH"] = 20_000
    login_as("radiologist")
    urls = client.post("/studies/upload/batches").get_json()
    with open(sample("MR_small.dcm"), "rb") as a, open(sample("CT_small.dcm"), "rb") as b:
        res = client.post(urls["files_url"], data={"files": [(a, "a.dcm"), (b, "b.dcm")]},
                          content_type="multipart/form-data",
                          headers={"Accept": "application/json"})
    assert res.status_code == 413
    assert res.get_json() == {
        "error": "upload too large: the limit is 0.019 MB per upload request", "limit_mb": "0.019"}
    from qaportal.hooks import megabytes

    assert [megabytes(n * 1024 * 1024) for n in (1024, 64, 1.5)] == ["1024", "64", "1.5"]


def test_files_the_browser_did_not_send_are_listed_in_the_summary(app, client, login_as):
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024
    login_as("radiologist")
    urls = client.post("/studies/upload/batches").get_json()
    with open(sample("CT_small.dcm"), "rb") as a:
        client.post(urls["files_url"], data={"files": [(a, "exam/CT.dcm")]},
                    content_type="multipart/form-data")
    reported = [
        {"file": "exam/huge.dcm", "reason": "too_large"},
        {"file": "exam/a.dcm", "reason": "failed", "detail": "the server answered 500"},
        {"file": "exam/b.dcm", "reason": "failed", "detail": "x" * 5000},
        {"file": "", "reason": "failed"}, "junk", {"file": 7}, {"more": 3},
    ]
    done = client.post(urls["finish_url"], data={"client_rejections": json.dumps(reported)})
    assert done.status_code == 200
    batch = db.session.scalars(sa.select(UploadBatch)).one()
    errors = {e["file"]: e["error"] for e in batch.errors}
    assert batch.stored == 1 and len(errors) == 4
    assert errors["exam/huge.dcm"] == "not sent: larger than the 64 MB limit per upload request"
    assert "part failed (the server answered 500)" in errors["exam/a.dcm"]
    assert len(errors["exam/b.dcm"]) < 400
    assert errors["3 more files"]
    summary = client.get(done.get_json()["redirect"]).get_data(as_text=True)
    assert "exam/huge.dcm" in summary and "64 MB limit" in summary and "exam/a.dcm" in summary
    # Finishing again (a retried request) adds nothing; garbage is ignored, never a 500.
    again = client.post(urls["finish_url"], data={"client_rejections": "{not json"})
    assert again.status_code == 200
    db.session.refresh(batch)
    assert len(batch.errors) == 4


def test_home_panel_lists_my_recent_studies(client, owner_study):
    _, study = owner_study
    page = client.get("/").get_data(as_text=True)
    assert "Your studies" in page and f"/studies/{study.id}" in page
    assert "Upload a study" in page


def test_home_panel_shows_studies_with_images_first_then_report_only(client, login_as):
    """Five studies: those with images newest first, then the newest report-only ones;
    the count is every study of theirs (0027 reads each part off the owner's index)."""
    import re
    from datetime import timedelta

    from qaportal.models import utcnow
    from qaportal.studies.panels import recent_studies
    from tests.factories import make_study

    owner = login_as("radiologist")
    now = utcnow()
    made = []
    for k, images in enumerate([True, False, True, False, False, True, False]):
        study = make_study(owner, description=f"STUDY {k}", instance_count=3 if images else 0)
        study.created_at = now - timedelta(minutes=10 * k)  # k = 0 is the newest
        made.append(study)
    db.session.commit()
    shown = recent_studies(owner)
    assert shown["total"] == 7
    assert [s.study_description for s in shown["recent"]] == [
        "STUDY 0", "STUDY 2", "STUDY 5", "STUDY 1", "STUDY 3"]
    page = client.get("/").get_data(as_text=True)
    assert [int(i) for i in re.findall(r'href="/studies/(\d+)"', page)] == [
        made[k].id for k in (0, 2, 5, 1, 3)]
