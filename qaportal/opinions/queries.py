"""Worklist queries: what each consultant and requester sees, with filters."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from qaportal.access_prefetch import prefetched
from qaportal.extensions import db
from qaportal.models import OpinionRequest, Study, User, loading
from qaportal.models.opinion import ACTIVE_STATUSES
from qaportal.paging import Key, Page, fixed_limit, keyset_page
from qaportal.permissions import can_claim_opinion_request

# ?cursor= (assigned to me), ?pool=, ?sent=, ?all=: one keyset cursor per list.
CURSOR_PARAMS = ("cursor", "pool", "sent", "all")
# By due time, soonest first (the sent list: latest first); each list reads an index on its
# filter column, due_at and id (migration 0020), the pool a partial one on unclaimed requests.
DUE_ORDER = (Key(OpinionRequest.due_at), Key(OpinionRequest.id))
SENT_ORDER = (Key(OpinionRequest.due_at, desc=True), Key(OpinionRequest.id, desc=True))


@dataclass
class Worklist:
    """The sections of one user's worklist, one keyset page each."""

    mine: list[OpinionRequest] = field(default_factory=list)
    pool: list[OpinionRequest] = field(default_factory=list)
    sent: list[OpinionRequest] = field(default_factory=list)
    everyone: list[OpinionRequest] | None = None
    pages: dict[str, Page] = field(default_factory=dict)  # by cursor parameter


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
    return stmt


def worklist(user: User, *, priority: str | None = None, status: str | None = None,
             modality: str | None = None, cursors: dict[str, str] | None = None,
             size: int = 50, with_sent: bool = True) -> Worklist:
    """Return a page of the user's requests, of the unclaimed requests of their pools, of
    what they sent (unless not with_sent) and (QA managers, administrators) of every
    request."""
    cursors = cursors or {}
    result = Worklist()
    default_status = status or None

    def page(param: str, stmt: sa.Select, order=DUE_ORDER) -> list[OpinionRequest]:
        result.pages[param] = keyset_page(
            db.session, stmt.order_by(*[k.order() for k in order]), order, OpinionRequest.id,
            cursors.get(param), size, options=loading.opinion_request_rows())
        return result.pages[param].items

    base = sa.select(OpinionRequest)
    mine = base.where(OpinionRequest.consultant_id == user.id)
    if not status:
        mine = mine.where(OpinionRequest.status.in_(("open", "accepted")))
    result.mine = page("cursor", _filtered(mine, priority, default_status, modality))
    if user.subspecialty_names and status in (None, "", "open"):
        pool = base.where(
            OpinionRequest.status == "open", OpinionRequest.consultant_id.is_(None),
            OpinionRequest.pool.in_(sorted(user.subspecialty_names)),
            OpinionRequest.requester_id != user.id,
        )
        candidates = page("pool", _filtered(pool, priority, None, modality))
        # A page of candidates, less those this user may not claim (who asked, who read it,
        # who declined): a page may show fewer rows; its cursors still walk the pool.
        with prefetched(user, [r.study for r in candidates]):
            result.pool = [r for r in candidates if can_claim_opinion_request(user, r)]
    if with_sent:
        sent = base.where(OpinionRequest.requester_id == user.id)
        result.sent = page("sent", _filtered(sent, priority, default_status, modality),
                           SENT_ORDER)
    if user.has_role("qa_manager", "admin"):
        every = base
        if not status:
            every = every.where(OpinionRequest.status.in_(ACTIVE_STATUSES))
        result.everyone = page("all", _filtered(every, priority, default_status, modality))
    return result


def active_sent_count(user: User, first: int) -> int:
    """How many of the first `first` requests of the user's sent list (its order) are still
    active: the sent list's first page, counted in the database instead of loaded."""
    shown = (sa.select(OpinionRequest.status).where(OpinionRequest.requester_id == user.id)
             .order_by(*[k.order() for k in SENT_ORDER]).limit(fixed_limit(first)).subquery())
    return db.session.scalar(sa.select(sa.func.count()).select_from(shown)
                             .where(shown.c.status.in_(ACTIVE_STATUSES))) or 0
