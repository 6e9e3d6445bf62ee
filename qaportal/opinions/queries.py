"""Worklist queries: what each consultant and requester sees, with filters."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from qaportal.access_prefetch import prefetched
from qaportal.extensions import db
from qaportal.models import OpinionRequest, Study, User, loading
from qaportal.models.opinion import ACTIVE_STATUSES
from qaportal.permissions import can_claim_opinion_request


@dataclass
class Worklist:
    """The sections of one user's worklist, each sorted by due time."""

    mine: list[OpinionRequest] = field(default_factory=list)
    pool: list[OpinionRequest] = field(default_factory=list)
    sent: list[OpinionRequest] = field(default_factory=list)
    everyone: list[OpinionRequest] | None = None


def _filtered(stmt: sa.Select, priority: str | None, status: str | None,
              modality: str | None) -> sa.Select:
    if priority:
        stmt = stmt.where(OpinionRequest.priority == priority)
    if status:
        stmt = stmt.where(OpinionRequest.status == status)
    if modality:
        like = f"%{modality.strip().upper()}%"
        stmt = stmt.where(OpinionRequest.study_id.in_(
            sa.select(Study.id).where(sa.func.upper(Study.modalities).like(like))))
    return stmt.order_by(OpinionRequest.due_at, OpinionRequest.id)


def worklist(user: User, *, priority: str | None = None, status: str | None = None,
             modality: str | None = None, sent_limit: int = 100) -> Worklist:
    """Return the user's requests, the unclaimed requests of their pools and what they sent."""
    base = sa.select(OpinionRequest).options(*loading.opinion_request_rows())
    result = Worklist()
    default_status = status or None
    mine = base.where(OpinionRequest.consultant_id == user.id)
    if not status:
        mine = mine.where(OpinionRequest.status.in_(("open", "accepted")))
    result.mine = db.session.scalars(_filtered(mine, priority, default_status, modality)).all()
    if user.subspecialty_names and status in (None, "", "open"):
        pool = base.where(
            OpinionRequest.status == "open", OpinionRequest.consultant_id.is_(None),
            OpinionRequest.pool.in_(sorted(user.subspecialty_names)),
            OpinionRequest.requester_id != user.id,
        )
        candidates = db.session.scalars(_filtered(pool, priority, None, modality)).all()
        with prefetched(user, [r.study for r in candidates]):
            result.pool = [r for r in candidates if can_claim_opinion_request(user, r)]
    sent = base.where(OpinionRequest.requester_id == user.id)
    sent = _filtered(sent, priority, default_status, modality)
    rows = db.session.scalars(sent.limit(sent_limit)).all()
    # Open work first (by due time), then closed requests.
    result.sent = sorted(rows, key=lambda r: (r.status not in ACTIVE_STATUSES, r.due_at))
    if user.has_role("qa_manager", "admin"):
        every = base
        if not status:
            every = every.where(OpinionRequest.status.in_(ACTIVE_STATUSES))
        result.everyone = db.session.scalars(
            _filtered(every, priority, default_status, modality).limit(500)).all()
    return result
