"""Review counts per bucket: the summary tables the statistics pages read.

A bucket is one reader's reads of one UTC day (review_day_counts, one row per listed
modalities string) and, summed from those, of one calendar month (review_month_counts).
The columns are qaportal.qa.aggregates.COUNT_LABELS over the submitted reviews of those
reads, with the definitions of qaportal.qa.stats.

Upkeep is by recomputation, never by deltas: whatever changes a review's contribution marks
the buckets it was in and is now in (the reader and day of its read before and after the
flush) on the session, and before the commit every marked bucket is counted again from the
raw rows (qaportal.qa.summary.recompute). Writes that bypass the ORM (benchmarks, bulk SQL,
migrations) call qaportal.qa.summary.rebuild, or `qaportal stats rebuild`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from qaportal.models.base import Base
from qaportal.models.discrepancy import DiscrepancyCase
from qaportal.models.review import Review, ReviewAmendment, ReviewAssignment
from qaportal.models.study import OriginalRead, Study

# The count columns, in the order of qaportal.qa.aggregates.COUNT_LABELS (a test checks it).
COUNT_COLUMNS = ("adhoc", "unable", "s_1", "s_2a", "s_2b", "s_3a", "s_3b", "significant",
                 "pending")


class _Counts:
    adhoc: Mapped[int] = mapped_column(default=0)
    unable: Mapped[int] = mapped_column(default=0)
    s_1: Mapped[int] = mapped_column(default=0)
    s_2a: Mapped[int] = mapped_column(default=0)
    s_2b: Mapped[int] = mapped_column(default=0)
    s_3a: Mapped[int] = mapped_column(default=0)
    s_3b: Mapped[int] = mapped_column(default=0)
    significant: Mapped[int] = mapped_column(default=0)
    pending: Mapped[int] = mapped_column(default=0)


class ReviewDayCount(_Counts, Base):
    """The review counts of one reader's reads finalized on one UTC day, per modalities."""

    __tablename__ = "review_day_counts"

    day: Mapped[date] = mapped_column(primary_key=True)
    reader_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), primary_key=True)
    modalities: Mapped[str] = mapped_column(sa.String(64), primary_key=True)


class ReviewMonthCount(_Counts, Base):
    """The same for a calendar month (`month` is its first day): the sum of its day rows."""

    __tablename__ = "review_month_counts"

    month: Mapped[date] = mapped_column(primary_key=True)
    reader_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), primary_key=True)
    modalities: Mapped[str] = mapped_column(sa.String(64), primary_key=True)


# A bucket is recounted from one reader's reads of one day: found by this index (0024).
sa.Index("ix_original_reads_reader_finalized", OriginalRead.reader_id, OriginalRead.finalized_at)

# --- marking the buckets a flush changes ---------------------------------------------------

BUCKETS = "qaportal_review_count_buckets"  # session.info key: {(reader_id, day)}

# The attributes whose change moves or changes a review's contribution.
_WATCHED = {
    OriginalRead: ("reader_id", "finalized_at", "study_id"),
    Study: ("modalities",),
    ReviewAssignment: ("read_id", "source", "status"),
    DiscrepancyCase: ("review_id", "status", "final_score"),
}


def _changed(obj, keys) -> bool:
    state = sa.inspect(obj)
    return any(state.attrs[k].history.has_changes() for k in keys)


def _refs(objects) -> dict[str, set[int]]:
    """Return the ids, per kind, of the rows whose reads' buckets the objects touch.

    `objects` are (object, how): "new", "dirty" or "deleted"; a dirty one counts only when
    a watched attribute changed."""
    refs: dict[str, set[int]] = {"read": set(), "study": set(), "assignment": set(),
                                 "review": set()}

    def add(kind, value):
        if value is not None:
            refs[kind].add(value)

    def review_of(obj):
        if obj.review_id is not None:
            return obj.review_id
        return obj.review.id if obj.review is not None else None

    for obj, how in objects:
        watched = _WATCHED.get(type(obj))
        if how == "dirty" and (watched is None or not _changed(obj, watched)):
            continue
        if isinstance(obj, Review):
            add("review", obj.id)
        elif isinstance(obj, ReviewAmendment | DiscrepancyCase):
            add("review", review_of(obj))
        elif how == "new":  # a new read, study or assignment has no submitted review yet
            continue
        elif isinstance(obj, ReviewAssignment):
            add("assignment", obj.id)
        elif isinstance(obj, OriginalRead):
            add("read", obj.id)
        elif isinstance(obj, Study):
            add("study", obj.id)
    return refs


def _day(value: datetime) -> date:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).date()


def _buckets(connection, refs: dict[str, set[int]]) -> set[tuple[int, date]]:
    """Return the (reader id, UTC day) of the reads the ids lead to, as the database has them."""
    r, a, rv = OriginalRead, ReviewAssignment, Review
    conditions = []
    if refs["read"]:
        conditions.append(r.id.in_(refs["read"]))
    if refs["study"]:
        conditions.append(r.study_id.in_(refs["study"]))
    if refs["assignment"]:
        conditions.append(r.id.in_(sa.select(a.read_id).where(a.id.in_(refs["assignment"]))))
    if refs["review"]:
        conditions.append(r.id.in_(sa.select(a.read_id).join(rv, rv.assignment_id == a.id)
                                   .where(rv.id.in_(refs["review"]))))
    if not conditions:
        return set()
    rows = connection.execute(sa.select(r.reader_id, r.finalized_at)
                              .where(sa.or_(*conditions), r.finalized_at.is_not(None)))
    return {(reader, _day(at)) for reader, at in rows}


def _mark(session: Session, objects) -> None:
    refs = _refs(objects)
    if any(refs.values()):
        with session.no_autoflush:
            found = _buckets(session.connection(), refs)
        session.info.setdefault(BUCKETS, set()).update(found)


@sa.event.listens_for(Session, "before_flush")
def _mark_old_buckets(session: Session, flush_context, instances) -> None:
    """The buckets the changed rows are in before the flush (their old reader and day)."""
    _mark(session, [*((o, "dirty") for o in session.dirty),
                    *((o, "deleted") for o in session.deleted)])


@sa.event.listens_for(Session, "after_flush")
def _mark_new_buckets(session: Session, flush_context) -> None:
    """The buckets they are in after it (the new and changed rows' reader and day)."""
    _mark(session, [*((o, "new") for o in session.new), *((o, "dirty") for o in session.dirty)])


@sa.event.listens_for(Session, "before_commit")
def _recount_marked_buckets(session: Session) -> None:
    from qaportal.qa.summary import settle

    settle(session)  # flushes first: the last changes mark their buckets too


@sa.event.listens_for(Session, "after_rollback")
def _forget_buckets(session: Session) -> None:
    session.info.pop(BUCKETS, None)
