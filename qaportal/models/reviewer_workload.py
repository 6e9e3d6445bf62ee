"""Each reviewer's review assignments counted by status: the QA workload table reads it.

One row per (reviewer, status) over the reviewer's assignments that are not legacy imports
(the workload figures of qaportal.qa.stats.reviewer_stats). Counting them from the raw rows
read every assignment of the department (a million at scale) on each QA page.

Upkeep is by recomputation, as for the review counts (qaportal/models/review_counts.py):
an assignment created, deleted, or changed in its reviewer, status or source marks its
reviewers before and after the flush on the session, and before the commit each marked
reviewer is counted again from the raw rows (qaportal.qa.workload.recount), under a lock
per reviewer taken before counting. Writes that bypass the ORM call
qaportal.qa.workload.rebuild (part of `qaportal stats rebuild`).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from qaportal.models.base import Base
from qaportal.models.review import ReviewAssignment

REVIEWERS = "qaportal_workload_reviewers"  # session.info key: {reviewer_id}
_WATCHED = ("reviewer_id", "status", "source")


class ReviewerStatusCount(Base):
    """How many of a reviewer's (non-legacy) assignments are in one status."""

    __tablename__ = "reviewer_status_counts"

    reviewer_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), primary_key=True)
    status: Mapped[str] = mapped_column(sa.String(12), primary_key=True)
    n: Mapped[int] = mapped_column(default=0)


# The overdue count reads the open assignments' due dates from this index alone (0026).
_OPEN = "status = 'assigned' AND source <> 'legacy'"
sa.Index("ix_review_assignments_open_due", ReviewAssignment.reviewer_id, ReviewAssignment.due_at,
         postgresql_where=sa.text(_OPEN), sqlite_where=sa.text(_OPEN))


def open_assignments() -> sa.ColumnElement[bool]:
    """The condition of an open assignment, as the partial index above states it: counting
    the department's open or overdue ones reads that index alone (7 ms at 50,000 open of a
    million, 99 ms by the status index). A legacy import is always stored submitted
    (qaportal/qa/legacy.py) and nothing sets an assignment back to assigned, so leaving
    legacy ones out changes no count."""
    a = ReviewAssignment
    return sa.and_(a.status == "assigned", a.source != "legacy")


def _assignments(objects):
    return [o for o in objects if isinstance(o, ReviewAssignment)]


def _mark(session: Session, ids) -> None:
    ids = {i for i in ids if i is not None}
    if ids:
        session.info.setdefault(REVIEWERS, set()).update(ids)


@sa.event.listens_for(Session, "before_flush")
def _mark_old_reviewers(session: Session, flush_context, instances) -> None:
    """The reviewers the changed or deleted assignments have before the flush."""
    changed = [o for o in _assignments(session.dirty)
               if any(sa.inspect(o).attrs[k].history.has_changes() for k in _WATCHED)]
    gone = _assignments(session.deleted)
    ids = [o.id for o in (*changed, *gone) if o.id is not None]
    if ids:
        with session.no_autoflush:
            rows = session.connection().execute(
                sa.select(ReviewAssignment.reviewer_id).where(ReviewAssignment.id.in_(ids)))
            _mark(session, (r for (r,) in rows))


@sa.event.listens_for(Session, "after_flush")
def _mark_new_reviewers(session: Session, flush_context) -> None:
    """The reviewers of the new and changed assignments after it."""
    _mark(session, (o.reviewer_id for o in _assignments((*session.new, *session.dirty))))


@sa.event.listens_for(Session, "before_commit")
def _recount_marked_reviewers(session: Session) -> None:
    from qaportal.qa.workload import settle

    settle(session)


@sa.event.listens_for(Session, "after_rollback")
def _forget_reviewers(session: Session) -> None:
    session.info.pop(REVIEWERS, None)
