"""Claiming from a pool under concurrency: exactly one consultant wins (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import AuditEvent, OpinionRequest, StudyAccess
from qaportal.opinions import service
from tests.factories import make_opinion_request, make_study, make_user

CLAIMERS = 4
ROUNDS = 3


def _claim_in_thread(app, request_id: int, user_id: int, barrier, results, errors):
    from qaportal.models import User

    with app.app_context():
        try:
            req = db.session.get(OpinionRequest, request_id)
            user = db.session.get(User, user_id)
            user.licenses  # noqa: B018 - load before the race, as a page view would
            _ = req.study, req.declines
            barrier.wait(timeout=10)
            try:
                service.claim(req, user)
                db.session.commit()
                results.append(("won", user_id))
            except service.ClaimLost:
                db.session.rollback()
                results.append(("lost", user_id))
        except Exception as exc:  # noqa: BLE001 - reported to the main thread
            db.session.rollback()
            errors.append(repr(exc))


def test_simultaneous_claims_have_exactly_one_winner(app):
    requester = make_user(licenses=["CA"])
    consultants = [make_user(subspecialties=["neuro"], licenses=["CA"])
                   for _ in range(CLAIMERS)]
    requests = [make_opinion_request(make_study(requester), requester, priority="stat")
                for _ in range(ROUNDS)]
    db.session.commit()
    ids = [u.id for u in consultants]
    for req in requests:
        barrier = threading.Barrier(CLAIMERS)
        results: list = []
        errors: list = []
        threads = [threading.Thread(target=_claim_in_thread,
                                    args=(app, req.id, uid, barrier, results, errors))
                   for uid in ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not errors, errors
        winners = [uid for outcome, uid in results if outcome == "won"]
        assert len(winners) == 1, results
        assert len(results) == CLAIMERS
        db.session.expire_all()
        stored = db.session.get(OpinionRequest, req.id)
        assert stored.status == "accepted" and stored.consultant_id == winners[0]
        grants = db.session.scalars(sa.select(StudyAccess.user_id).where(
            StudyAccess.study_id == stored.study_id, StudyAccess.revoked_at.is_(None))).all()
        assert grants == [winners[0]]
        claims = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "opinion.claimed", AuditEvent.object_id == str(req.id)))
        assert claims == 1
