"""Cancel racing a claim or a signature: the status changes only from the state it was in.

Each action runs in its own thread with its own session (as two browsers would), on SQLite
and, with QAPORTAL_TEST_DATABASE_URL set, on PostgreSQL.
"""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import AuditEvent, Notification, Opinion, OpinionRequest, StudyAccess, User
from qaportal.opinions import service, signing
from tests.factories import DEFAULT_PASSWORD, make_opinion_request, make_study, make_user

ROUNDS = 4
FILLED = {"findings": "Hypodensity left insula.", "impression": "Early infarct.",
          "agreement": "agree"}


def _act(action: str, req: OpinionRequest, user: User) -> None:
    if action == "claim":
        service.claim(req, user)
    elif action == "cancel":
        service.cancel(req, user, "Patient transferred")
    elif action == "sign":
        signing.sign(req, user, DEFAULT_PASSWORD)
    else:  # pragma: no cover - a typo in a test
        raise AssertionError(action)


def _in_thread(app, action: str, request_id: int, user_id: int, barrier, results, errors):
    with app.app_context():
        try:
            req = db.session.get(OpinionRequest, request_id)
            user = db.session.get(User, user_id)
            # Load what a page view would have loaded before the user pressed the button.
            _ = user.licenses, user.subspecialties, req.study, req.declines, req.opinion
            _ = req.consultant, req.requester
            if barrier is not None:
                barrier.wait(timeout=10)
            try:
                _act(action, req, user)
                db.session.commit()
                results.append((action, "won", ""))
            except service.OpinionError as exc:
                db.session.rollback()
                results.append((action, "refused", str(exc)))
        except Exception as exc:  # noqa: BLE001 - reported to the main thread
            db.session.rollback()
            errors.append(repr(exc))
        finally:
            db.session.remove()


def _run(app, jobs, barrier=None, *, expire: bool = True):
    """Run (action, request_id, user_id) jobs in threads; return their outcomes.

    With expire=False the test's own session keeps what it loaded before, as the page of a
    user who has not reloaded it.
    """
    results: list = []
    errors: list = []
    threads = [threading.Thread(target=_in_thread,
                                args=(app, action, rid, uid, barrier, results, errors))
               for action, rid, uid in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    assert len(results) == len(jobs)
    if expire:
        db.session.expire_all()
    return results


@pytest.fixture
def people(app):
    a = make_user(licenses=["CA"], full_name="Dr Requester")
    b = make_user(subspecialties=["neuro"], licenses=["CA"], full_name="Dr Bravo")
    db.session.commit()
    return a, b


def _live_grants(req: OpinionRequest) -> list[int]:
    return db.session.scalars(sa.select(StudyAccess.user_id).where(
        StudyAccess.study_id == req.study_id, StudyAccess.source_type == "opinion_request",
        StudyAccess.source_id == req.id, StudyAccess.revoked_at.is_(None))).all()


def _claimed_with_draft(a, b) -> OpinionRequest:
    req = make_opinion_request(make_study(a), a, priority="stat")
    service.claim(req, b)
    signing.save_draft(req, b, FILLED)
    db.session.commit()
    return req


def test_cancel_after_a_claim_the_requester_did_not_see_revokes_the_new_access(app, people):
    a, b = people
    req = make_opinion_request(make_study(a), a)
    db.session.commit()
    assert req.consultant is None  # the requester's page: nobody has it yet
    _run(app, [("claim", req.id, b.id)], expire=False)  # B claims meanwhile, in another session
    assert _live_grants(req) == [b.id]
    service.cancel(req, a, "No longer needed")
    db.session.commit()
    db.session.expire_all()
    assert req.status == "cancelled" and req.cancel_reason == "No longer needed"
    assert _live_grants(req) == []
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification).where(
        Notification.user_id == b.id, Notification.kind == "opinion.cancelled")) == 1


def test_sign_after_a_cancel_is_refused_and_nothing_is_signed(app, people):
    a, b = people
    req = _claimed_with_draft(a, b)
    _ = req.opinion  # B's writing page is open
    _run(app, [("cancel", req.id, a.id)], expire=False)
    with pytest.raises(service.OpinionError, match="cancelled this request"):
        signing.sign(req, b, DEFAULT_PASSWORD)
    db.session.rollback()
    assert req.status == "cancelled"
    assert db.session.scalar(sa.select(Opinion.signed_at)) is None


def test_cancel_after_a_signature_is_refused(app, people):
    a, b = people
    req = _claimed_with_draft(a, b)
    assert req.status == "accepted"  # the requester's page still offers Cancel
    _run(app, [("sign", req.id, b.id)], expire=False)
    with pytest.raises(service.OpinionError, match="signed a moment ago"):
        service.cancel(req, a, "Too late")
    db.session.rollback()
    assert req.status == "signed" and req.cancelled_at is None and not req.cancel_reason
    assert db.session.scalar(sa.select(Opinion.signed_at)) is not None


def test_cancel_and_sign_at_once_exactly_one_wins(app, people):
    a, b = people
    outcomes = set()
    for _ in range(ROUNDS):
        req = _claimed_with_draft(a, b)
        results = _run(app, [("cancel", req.id, a.id), ("sign", req.id, b.id)],
                       threading.Barrier(2))
        won = [action for action, outcome, _ in results if outcome == "won"]
        assert len(won) == 1, results
        refused = next(r for r in results if r[1] == "refused")
        outcomes.add(won[0])
        stored = db.session.get(OpinionRequest, req.id)
        opinion = stored.opinion
        if won[0] == "sign":
            assert "signed a moment ago" in refused[2]
            assert stored.status == "signed" and opinion.signed_at is not None
            assert stored.cancelled_at is None
        else:
            assert "cancelled this request" in refused[2]
            assert stored.status == "cancelled" and opinion.signed_at is None
            assert stored.signed_at is None and _live_grants(stored) == []
        actions = db.session.scalars(sa.select(AuditEvent.action).where(
            AuditEvent.object_id == str(req.id),
            AuditEvent.action.in_(("opinion.signed", "opinion.cancelled")))).all()
        assert actions == [f"opinion.{'signed' if won[0] == 'sign' else 'cancelled'}"]


def test_cancel_and_claim_at_once_leave_no_access_behind(app, people):
    a, b = people
    for _ in range(ROUNDS):
        req = make_opinion_request(make_study(a), a, priority="stat")
        db.session.commit()
        results = _run(app, [("cancel", req.id, a.id), ("claim", req.id, b.id)],
                       threading.Barrier(2))
        outcome = {action: (result, message) for action, result, message in results}
        # The cancel always goes through: before a claim, or after it (revoking the grant).
        assert outcome["cancel"][0] == "won", results
        if outcome["claim"][0] == "refused":
            assert outcome["claim"][1] == "The requester cancelled this request."
        stored = db.session.get(OpinionRequest, req.id)
        assert stored.status == "cancelled"
        assert _live_grants(stored) == []
