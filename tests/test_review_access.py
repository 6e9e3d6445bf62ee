"""A peer reviewer's study access ends on time: kept while reviewing and for
REVIEW_ACCESS_DAYS after submitting (the review and its images open), then the sweep deletes
the grant (audited); a cancelled assignment's grant ends at the next sweep. The review
stays open without images, and the reviewer stays blind to the reader."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from qaportal.models import AuditEvent, StudyAccess, utcnow
from qaportal.permissions import can_view_study, is_blind_access
from qaportal.reviews import access, service
from tests.factories import make_assignment, make_study, make_user


@pytest.fixture
def w(app, db):
    reader = make_user(["radiologist"])
    reviewer = make_user(["reviewer"])
    study = make_study(reader, report="Lungs clear.")
    a = make_assignment(study.read, reviewer)
    db.session.commit()
    return {"reader": reader, "reviewer": reviewer, "study": study, "a": a}


def _grants(db, assignment_id: int) -> list[StudyAccess]:
    return db.session.scalars(sa.select(StudyAccess).where(
        StudyAccess.source_type == "review_assignment",
        StudyAccess.source_id == assignment_id)).all()


def _submit(db, w) -> None:
    service.reveal(w["a"], "My impression.", by=w["reviewer"])
    service.submit(w["a"], w["reviewer"], score="1", category=None, comment="",
                   unable_reason="", learning_case=False)
    db.session.commit()


def test_grant_kept_after_submitting_then_ended_by_the_sweep(app, client, auth, db, w):
    a, reviewer, study = w["a"], w["reviewer"], w["study"]
    _submit(db, w)
    auth.login(reviewer)
    # just submitted: the review and its images still open, the sweep leaves the grant
    assert access.sweep() == 0
    db.session.commit()
    assert len(_grants(db, a.id)) == 1 and can_view_study(reviewer, study)
    page = client.get(f"/reviews/{a.id}").get_data(as_text=True)
    assert 'id="open-viewer"' in page and 'id="images-closed"' not in page
    assert client.get(f"/studies/{study.id}/viewer").status_code == 200
    # REVIEW_ACCESS_DAYS later the grant is deleted, with an audit entry
    later = a.submitted_at + timedelta(days=app.config["REVIEW_ACCESS_DAYS"] + 1)
    assert access.sweep(now=later) == 1
    db.session.commit()
    assert _grants(db, a.id) == []
    event = db.session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "study.access_revoked")).one()
    assert event.details["user_id"] == reviewer.id
    assert event.details["source"] == f"review_assignment:{a.id}"
    assert "submitted" in event.details["reason"]
    assert access.sweep(now=later) == 0  # nothing left to end
    # the review stays open to its reviewer, without images; the study is closed to them
    db.session.expire_all()
    assert not can_view_study(reviewer, study)
    page = client.get(f"/reviews/{a.id}").get_data(as_text=True)
    assert 'id="images-closed"' in page and 'id="open-viewer"' not in page
    assert client.get(f"/reviews/{a.id}/record.txt").status_code == 200
    assert client.get(f"/studies/{study.id}/viewer").status_code == 404
    assert client.get(f"/studies/{study.id}").status_code == 404
    # still blind: the assignment itself is the blind role
    assert is_blind_access(reviewer, study)


def test_open_assignments_keep_their_grant_cancelled_ones_lose_it(app, db, w):
    reviewer = w["reviewer"]
    other = make_assignment(make_study(w["reader"]).read, reviewer)
    db.session.commit()
    far = utcnow() + timedelta(days=365)
    assert access.sweep(now=far) == 0  # open work is never swept, however old
    other.status = "cancelled"
    db.session.commit()
    assert access.sweep() == 1
    db.session.commit()
    assert _grants(db, other.id) == [] and len(_grants(db, w["a"].id)) == 1
    reason = db.session.scalars(sa.select(AuditEvent.details).where(
        AuditEvent.action == "study.access_revoked")).one()["reason"]
    assert reason == "assignment cancelled"


def test_the_sweep_ends_at_most_a_batch(app, db, w):
    reviewer, reader = w["reviewer"], w["reader"]
    assignments = [w["a"]] + [make_assignment(make_study(reader).read, reviewer)
                              for _ in range(2)]
    for a in assignments:
        a.status = "cancelled"
    db.session.commit()
    assert access.sweep(batch=2) == 2
    assert access.sweep(batch=2) == 1
    db.session.commit()
    assert all(_grants(db, a.id) == [] for a in assignments)
