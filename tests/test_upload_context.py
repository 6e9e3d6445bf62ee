"""The clinical context and read of an upload belong to one study each."""

from __future__ import annotations

import pydicom
import pytest
import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import AuditEvent, OriginalRead, Study, UploadBatch
from tests.factories import make_user
from tests.studyfiles import modified_copy, sample
from tests.studyfiles import post_upload as _upload

SHARED_REPORT = "IMPRESSION: No acute intracranial abnormality."
SHARED_QUESTION = "Headache, rule out bleed."


def _third_study(tmp_path):
    """CT_small as a study of its own (new study, series and instance UIDs)."""
    return modified_copy("CT_small.dcm", tmp_path / "perfusion.dcm",
                         StudyInstanceUID=pydicom.uid.generate_uid(),
                         SeriesInstanceUID=pydicom.uid.generate_uid(),
                         SOPInstanceUID=pydicom.uid.generate_uid(),
                         StudyDescription="CT PERFUSION")


@pytest.fixture
def three_studies(client, login_as, tmp_path):
    """A radiologist's upload of three studies with one context typed on the upload page."""
    me = login_as("radiologist")
    head = modified_copy("CT_small.dcm", tmp_path / "head.dcm", StudyDescription="CT HEAD")
    mr = modified_copy("MR_small.dcm", tmp_path / "abdomen.dcm", StudyDescription="MR ABDOMEN")
    res = _upload(client, head, mr, _third_study(tmp_path), clinical_question=SHARED_QUESTION,
                  report_text=SHARED_REPORT, finalize_now="y", reader_id=str(me.id))
    assert res.status_code == 302
    batch = db.session.scalars(sa.select(UploadBatch)).one()
    studies = {s.study_description: s for s in db.session.scalars(sa.select(Study))}
    assert set(studies) == {"CT HEAD", "MR ABDOMEN", "CT PERFUSION"}
    return me, batch, studies, res.location


def _post_context(client, batch, study, **fields):
    data = {f"s{study.id}-{k}": v for k, v in fields.items()}
    return client.post(f"/studies/upload/batches/{batch.id}/studies/{study.id}/context",
                       data=data)


def test_context_typed_once_is_applied_to_none_of_several_studies(client, three_studies):
    _me, batch, studies, summary_url = three_studies
    assert db.session.scalars(sa.select(OriginalRead)).all() == []
    assert all(s.clinical_question == "" for s in studies.values())
    assert batch.pending_context["report_text"] == SHARED_REPORT
    page = client.get(summary_url).get_data(as_text=True)
    assert "applied to none of them" in page
    # One form per study, each prefilled with the text typed once, and a confirmation each.
    for study in studies.values():
        assert f'id="study-context-{study.id}"' in page
        assert f'name="s{study.id}-confirm_study"' in page
    assert page.count(SHARED_REPORT) == 3
    assert page.count("needs its read") == 3
    event = db.session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "study.upload_finished")).one()
    assert event.details["context"] == "held"


def test_shared_report_needs_the_studys_own_confirmation(client, three_studies):
    me, batch, studies, _ = three_studies
    head = studies["CT HEAD"]
    res = _post_context(client, batch, head, clinical_question=SHARED_QUESTION,
                        report_text=SHARED_REPORT, reader_id=str(me.id), finalize_now="y")
    assert res.status_code == 422
    page = res.get_data(as_text=True)
    assert "Tick the box to confirm it belongs to CT HEAD" in page
    assert SHARED_REPORT in page
    db.session.expire_all()
    assert db.session.get(Study, head.id).read is None
    ok = _post_context(client, batch, head, clinical_question=SHARED_QUESTION,
                       report_text=SHARED_REPORT, reader_id=str(me.id), finalize_now="y",
                       confirm_study="y")
    assert ok.status_code == 302
    db.session.expire_all()
    reads = db.session.scalars(sa.select(OriginalRead)).all()
    assert [(r.study_id, r.report_text, r.is_final) for r in reads] == [
        (head.id, SHARED_REPORT, True)]
    assert db.session.get(Study, head.id).clinical_question == SHARED_QUESTION


def test_each_study_gets_its_own_context_and_no_other(client, three_studies):
    me, batch, studies, _ = three_studies
    typed = {"CT HEAD": ("Head question", "Head report."),
             "MR ABDOMEN": ("Abdominal pain", "Liver lesion, likely haemangioma."),
             "CT PERFUSION": ("Stroke window", "No perfusion deficit.")}
    for name, (question, report) in typed.items():
        res = _post_context(client, batch, studies[name], clinical_question=question,
                            report_text=report, reader_id=str(me.id))
        assert res.status_code == 302, res.get_data(as_text=True)[:2000]
    db.session.expire_all()
    for name, (question, report) in typed.items():
        study = db.session.get(Study, studies[name].id)
        assert (study.clinical_question, study.read.report_text) == (question, report)
        assert not study.read.is_final


def test_a_form_error_keeps_what_was_typed_and_names_the_study(client, three_studies):
    _me, batch, studies, _ = three_studies
    mr = studies["MR ABDOMEN"]
    res = _post_context(client, batch, mr, jurisdiction="not a code",
                        clinical_question="Typed for the MR", report_text="MR typed report.")
    assert res.status_code == 422
    page = res.get_data(as_text=True)
    assert "Use a code such as CA" in page
    assert "Typed for the MR" in page and "MR typed report." in page


def test_per_study_form_refuses_other_batches_and_other_studies(client, auth, three_studies,
                                                                tmp_path):
    me, batch, studies, _ = three_studies
    head = studies["CT HEAD"]
    other_batch = UploadBatch(user_id=me.id, source="browser", study_ids=[])
    db.session.add(other_batch)
    db.session.commit()
    assert _post_context(client, other_batch, head, clinical_question="x").status_code == 404
    colleague = make_user(roles=("radiologist",))
    db.session.commit()
    auth.logout()
    auth.login(colleague)
    assert _post_context(client, batch, head, clinical_question="x").status_code == 404


def test_single_study_upload_keeps_the_one_form(client, login_as, tmp_path):
    login_as("radiologist")
    res = _upload(client, sample("CT_small.dcm"), clinical_question="Q once",
                  report_text="Only study report.", finalize_now="y")
    assert res.status_code == 302
    study = db.session.scalars(sa.select(Study)).one()
    assert (study.clinical_question, study.read.report_text) == ("Q once", "Only study report.")
    assert "study-contexts" not in client.get(res.location).get_data(as_text=True)


def test_summary_messages_name_their_study(client, login_as, tmp_path):
    login_as("radiologist")
    path = modified_copy("CT_small.dcm", tmp_path / "ct.dcm", StudyDescription="CT HEAD")
    _upload(client, path, report_text="First report.", finalize_now="y")
    again = _upload(client, path, report_text="A different report.", finalize_now="y")
    page = client.get(again.location).get_data(as_text=True)
    assert "CT HEAD" in page
    messages = [line for line in page.splitlines() if "flash-error" in line]
    assert len(messages) == 1
    assert "CT HEAD" in messages[0] and "final and can no longer be changed" in messages[0]


def test_a_study_someone_else_stored_first_is_a_study_of_ones_own(client, auth, login_as,
                                                                    tmp_path):
    """The same UID another user stored first becomes the uploader's own study (study
    identity per owner): two studies of one's own, so the typed report goes to neither, and
    the colleague's study is neither offered a form nor changed."""
    colleague = login_as("radiologist")
    _upload(client, sample("MR_small.dcm"))
    auth.logout()
    me = make_user(roles=("radiologist",))
    db.session.commit()
    auth.login(me)
    res = _upload(client, sample("CT_small.dcm"), sample("MR_small.dcm"),
                  report_text="Meant for the MR.", finalize_now="y")
    db.session.expire_all()
    mine = db.session.scalars(sa.select(Study).where(Study.owner_id == me.id)).all()
    assert len(mine) == 2 and all(s.read is None for s in mine)
    page = client.get(res.location).get_data(as_text=True)
    assert all(f'id="study-context-{s.id}"' in page for s in mine)
    theirs = db.session.scalars(sa.select(Study).where(Study.owner_id == colleague.id)).one()
    assert f'id="study-context-{theirs.id}"' not in page
    assert theirs.read is None and theirs.instance_count == 1


def test_a_typed_finalization_time_is_offered_to_each_study(client, login_as, tmp_path):
    login_as("radiologist")
    mr = modified_copy("MR_small.dcm", tmp_path / "mr.dcm", StudyDescription="MR ABDOMEN")
    res = _upload(client, sample("CT_small.dcm"), mr, report_text="Typed once.",
                  finalized_at="2026-11-02T08:30", tz_offset="0")
    page = client.get(res.location).get_data(as_text=True)
    assert page.count('value="2026-11-02T08:30"') == 2
    assert db.session.scalars(sa.select(OriginalRead)).all() == []
