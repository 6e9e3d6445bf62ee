"""Reviewers' workload (assigned, completed, open, overdue) from reviewer_status_counts.

The completed and open counts are read from the per-reviewer status counts kept by
qaportal/models/reviewer_workload.py; only the overdue ones (open assignments past their
due date, a moving set) are counted from the raw rows, through the index on
(reviewer_id, status, due_at). raw_reviewer_stats is the reference: the same figures from
every assignment.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from qaportal.models import ReviewAssignment, User
from qaportal.models.reviewer_workload import REVIEWERS, ReviewerStatusCount

COUNTS = ReviewerStatusCount.__table__
# pg_advisory_xact_lock keys of the per-reviewer locks: this tag in the top bits (the review
# counts' locks use another).
_LOCK_TAG = 0x5157 << 47


def _counted(a=ReviewAssignment):
    return a.source != "legacy"


def settle(session: Session) -> None:
    """Count now the reviewers this session's changes marked (normally at the commit)."""
    session.flush()
    reviewers = session.info.pop(REVIEWERS, None)
    if reviewers:
        recount(session, reviewers)


def recount(session: Session, reviewer_ids: Iterable[int]) -> None:
    """Count the reviewers' assignments per status again from the raw rows.

    On PostgreSQL each reviewer's lock is taken first, in one order for every writer:
    under READ COMMITTED the count then sees what a concurrent writer committed."""
    a = ReviewAssignment
    ids = sorted(set(reviewer_ids))
    with session.no_autoflush:
        if session.get_bind().dialect.name == "postgresql":
            for reviewer_id in ids:
                session.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_TAG | reviewer_id)))
        session.execute(sa.delete(COUNTS).where(COUNTS.c.reviewer_id.in_(ids)))
        session.execute(sa.insert(COUNTS).from_select(
            ["reviewer_id", "status", "n"],
            sa.select(a.reviewer_id, a.status, sa.func.count())
            .where(a.reviewer_id.in_(ids), _counted()).group_by(a.reviewer_id, a.status)))


def rebuild(connection: sa.Connection) -> int:
    """Count every reviewer again (after writes that bypass the ORM); returns the rows."""
    a = ReviewAssignment
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("LOCK TABLE reviewer_status_counts IN SHARE ROW EXCLUSIVE MODE"))
    connection.execute(sa.delete(COUNTS))
    connection.execute(sa.insert(COUNTS).from_select(
        ["reviewer_id", "status", "n"],
        sa.select(a.reviewer_id, a.status, sa.func.count()).where(_counted())
        .group_by(a.reviewer_id, a.status)))
    return connection.scalar(sa.select(sa.func.count()).select_from(COUNTS))


def _n(status: str):
    return sa.func.coalesce(sa.func.sum(sa.case((COUNTS.c.status == status, COUNTS.c.n),
                                                else_=0)), 0)


def reviewer_rows(session: Session, now: datetime) -> list[tuple]:
    """Return (reviewer id, name, assigned, completed, open, overdue) per reviewer with a
    non-cancelled assignment, by name."""
    settle(session)
    a = ReviewAssignment
    rows = session.execute(
        sa.select(COUNTS.c.reviewer_id, User.full_name, _n("submitted"), _n("assigned"))
        .join(User, User.id == COUNTS.c.reviewer_id)
        .group_by(COUNTS.c.reviewer_id, User.full_name)
        .having(_n("submitted") + _n("assigned") > 0)
        .order_by(User.full_name)).all()
    ids = [r[0] for r in rows]
    overdue = dict(session.execute(
        sa.select(a.reviewer_id, sa.func.count())
        .where(a.reviewer_id.in_(ids), a.status == "assigned", a.due_at < now, _counted())
        .group_by(a.reviewer_id)).all()) if ids else {}
    return [(rid, name, int(done) + int(open_), int(done), int(open_), int(overdue.get(rid, 0)))
            for rid, name, done, open_ in rows]


def raw_reviewer_rows(session: Session, now: datetime) -> list[tuple]:
    """The same figures counted from every assignment (the reference, for tests)."""
    a = ReviewAssignment
    rows = session.execute(
        sa.select(
            a.reviewer_id, User.full_name,
            sa.func.count(a.id),
            sa.func.sum(sa.case((a.status == "submitted", 1), else_=0)),
            sa.func.sum(sa.case((a.status == "assigned", 1), else_=0)),
            sa.func.sum(sa.case(((a.status == "assigned") & (a.due_at < now), 1), else_=0)),
        )
        .join(User, User.id == a.reviewer_id)
        .where(_counted(), a.status != "cancelled")
        .group_by(a.reviewer_id, User.full_name)
        .order_by(User.full_name)
    ).all()
    return [(r[0], r[1], int(r[2]), int(r[3] or 0), int(r[4] or 0), int(r[5] or 0))
            for r in rows]
