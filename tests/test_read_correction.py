"""A QA manager corrects a wrong final read; the old version stays, reviews
scored on it are flagged for QA, and blind reviewers do not see the history."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DatabaseError

from qaportal.extensions import db
from qaportal.models import AuditEvent, OriginalReadVersion, Study
from qaportal.qa.cases import open_case
from tests.factories import make_review, make_study, make_user

WRONG = "IMPRESSION: No acute intracranial abnormality."
RIGHT = "IMPRESSION: Simple hepatic cyst. No other abnormality."


@pytest.fixture
def wrong_read(app):
    """An abdominal MR carrying a head CT's final report, already scored by a reviewer."""
    uploader = make_user(roles=("radiologist",), full_name="Dr Uploader Reads")
    reviewer = make_user(roles=("reviewer",), full_name="Dr Blind Reviewer")
    study = make_study(uploader, modality="MR", description="MR ABDOMEN", report=WRONG)
    review = make_review(study.read, reviewer, "2b")
    db.session.commit()
    return uploader, reviewer, study, review


def _correct(client, study, reader, **fields):
    data = {"report_text": RIGHT, "reader_id": str(reader.id), "keep_final": "y",
            "reason": "The report was copied from the head CT of the same upload.", **fields}
    return client.post(f"/studies/{study.id}/read/correct", data=data)


def test_qa_manager_corrects_a_final_read_and_the_old_version_is_kept(client, login_as,
                                                                      wrong_read):
    uploader, _reviewer, study, review = wrong_read
    qa = login_as("qa_manager", full_name="Dr Quality Manager")
    assert client.get(f"/studies/{study.id}/read/correct").status_code == 200
    res = _correct(client, study, uploader)
    assert res.status_code == 302
    db.session.expire_all()
    study = db.session.get(Study, study.id)
    assert study.read.report_text == RIGHT and study.read.is_final
    (version,) = study.read.versions
    assert (version.version, version.report_text, version.reader_id, version.superseded_by_id) \
        == (1, WRONG, uploader.id, qa.id)
    assert version.reason.startswith("The report was copied")
    event = db.session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "study.read_corrected")).one()
    assert event.details["flagged_reviews"] == [review.id]
    assert event.actor_id == qa.id
    page = client.get(f"/studies/{study.id}").get_data(as_text=True)
    assert 'id="read-history"' in page and WRONG in page and RIGHT in page
    assert "copied from the head CT" in page


def test_a_correction_needs_a_reason_and_keeps_what_was_typed(client, login_as, wrong_read):
    uploader, _reviewer, study, _review = wrong_read
    login_as("qa_manager")
    res = _correct(client, study, uploader, reason="   ", report_text="Typed correction.")
    assert res.status_code == 200
    page = res.get_data(as_text=True)
    assert "Give the reason for the correction." in page and "Typed correction." in page
    db.session.expire_all()
    assert db.session.get(Study, study.id).read.report_text == WRONG
    assert db.session.scalars(sa.select(OriginalReadVersion)).all() == []


def test_a_wrong_read_can_be_made_preliminary_for_the_uploader(client, auth, login_as,
                                                               wrong_read):
    uploader, _reviewer, study, _review = wrong_read
    login_as("qa_manager")
    assert _correct(client, study, uploader, keep_final="",
                    report_text="Withdrawn: belonged to another study.").status_code == 302
    db.session.expire_all()
    assert not db.session.get(Study, study.id).read.is_final
    auth.logout()
    auth.login(uploader)
    ok = client.post(f"/studies/{study.id}/edit", data={
        "report_text": RIGHT, "reader_id": str(uploader.id), "finalize_now": "y"})
    assert ok.status_code == 302
    db.session.expire_all()
    read = db.session.get(Study, study.id).read
    assert (read.report_text, read.is_final, len(read.versions)) == (RIGHT, True, 1)


def test_uploader_cannot_correct_a_final_read(client, auth, wrong_read):
    uploader, _reviewer, study, _review = wrong_read
    auth.login(uploader)
    assert _correct(client, study, uploader).status_code == 403
    page = client.get(f"/studies/{study.id}/edit").get_data(as_text=True)
    assert "a QA manager can correct it" in page


def test_reviews_scored_on_the_superseded_read_are_flagged(client, login_as, wrong_read):
    uploader, _reviewer, study, review = wrong_read
    case = open_case(review, None)
    db.session.commit()
    login_as("qa_manager")
    flag = "scored on a corrected read"
    assert "corrected-read-flag" not in client.get("/qa/reviews").get_data(as_text=True)
    assert _correct(client, study, uploader).status_code == 302
    later = make_review(db.session.get(Study, study.id).read,
                        make_user(roles=("reviewer",)), "1")
    db.session.commit()
    listing = client.get("/qa/reviews").get_data(as_text=True)
    rows = {line for line in listing.split("<tr>") if "qa/reviews/" in line}
    flagged = [r for r in rows if flag in r]
    assert len(flagged) == 1 and f"/qa/reviews/{review.id}\"" in flagged[0]
    assert f"/qa/reviews/{later.id}\"" in "".join(rows)
    only_flagged = client.get("/qa/reviews?flag=corrected").get_data(as_text=True)
    assert f"/qa/reviews/{review.id}\"" in only_flagged
    assert f"/qa/reviews/{later.id}\"" not in only_flagged
    assert "Scored on a corrected read" in client.get(
        f"/qa/reviews/{review.id}").get_data(as_text=True)
    assert "Scored on a corrected read" not in client.get(
        f"/qa/reviews/{later.id}").get_data(as_text=True)
    assert "Scored on a corrected read" in client.get(
        f"/qa/cases/{case.id}").get_data(as_text=True)


def test_blind_reviewer_does_not_see_the_history(client, auth, login_as, wrong_read):
    uploader, reviewer, study, _review = wrong_read
    login_as("qa_manager")
    assert _correct(client, study, uploader).status_code == 302
    auth.logout()
    auth.login(reviewer)
    page = client.get(f"/studies/{study.id}").get_data(as_text=True)
    assert "read-history" not in page and WRONG not in page
    assert uploader.full_name not in page


def test_kept_versions_are_immutable_in_the_database(client, login_as, wrong_read):
    uploader, _reviewer, study, _review = wrong_read
    login_as("qa_manager")
    assert _correct(client, study, uploader).status_code == 302
    for stmt in ("UPDATE original_read_versions SET report_text = 'x'",
                 "DELETE FROM original_read_versions"):
        with pytest.raises(DatabaseError, match="immutable"):
            db.session.execute(sa.text(stmt))
        db.session.rollback()
    assert db.session.scalars(sa.select(OriginalReadVersion)).one().report_text == WRONG
