"""The statistics read from the summary tables, and their upkeep (qaportal/models/review_counts.py).

grouped_counts here answers exactly what qaportal.qa.aggregates.grouped_counts counts from
the raw rows, for periods of whole UTC days (stats.Period.bounds): the period's whole
calendar months are read from review_month_counts, its edge days from review_day_counts,
so a year is a few thousand small rows whatever the number of reviews.

recompute counts marked buckets again from the raw rows, under a lock per reader and month
taken before counting: under READ COMMITTED the count then sees every review a concurrent
writer committed, and the last writer never writes a stale count. rebuild counts them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from qaportal.models.review_counts import (
    BUCKETS,
    COUNT_COLUMNS,
    ReviewDayCount,
    ReviewMonthCount,
)
from qaportal.qa import aggregates

DAY, MONTH = ReviewDayCount.__table__, ReviewMonthCount.__table__
# pg_advisory_xact_lock keys of the (reader, month) locks: this tag in the top 16 bits.
_LOCK_TAG = 0x5143 << 47


def _month_start(d: date) -> date:
    return d.replace(day=1)


def _next_month(d: date) -> date:
    return (d.replace(day=28) + timedelta(days=4)).replace(day=1)


def _midnight(d: date) -> datetime:
    return datetime.combine(d, time(), UTC)


def _whole_day(value: datetime) -> date | None:
    """The UTC date of a UTC midnight; None when the instant is not one."""
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return value.date() if value.time() == time() else None


def _month_key(column, dialect: str):
    if dialect == "sqlite":
        return sa.func.strftime(sa.literal_column("'%Y-%m'"), column)
    return sa.func.to_char(column, sa.literal_column("'YYYY-MM'"))


def _ranges(first: date, end: date) -> tuple[list[tuple[date, date]], tuple[date, date] | None]:
    """Split [first, end) into day ranges and the range of whole months between them."""
    m0 = first if first.day == 1 else _next_month(first)
    m1 = _month_start(end)
    if m0 >= m1:
        return [(first, end)], None
    return [r for r in ((first, m0), (m1, end)) if r[0] < r[1]], (m0, m1)


def grouped_counts(session: Session, start: datetime, end: datetime, *,
                   by: Sequence[str] = (), modality: str | None = None,
                   reader_id: int | None = None) -> list[sa.Row]:
    """Return the period's review counts per group, as aggregates.grouped_counts does,
    read from the summary tables (by: any of "reader_id", "modalities", "month").

    A period not made of whole UTC days is counted from the raw rows."""
    first, stop = _whole_day(start), _whole_day(end)
    if first is None or stop is None or "day" in by:
        return aggregates.grouped_counts(session, start, end, by=by, modality=modality,
                                         reader_id=reader_id)
    settle(session)
    dialect = aggregates.dialect_of(session)
    days, months = _ranges(first, stop) if first < stop else ([], None)

    def part(table, column, ranges):
        where = [sa.or_(*(sa.and_(column >= a, column < b) for a, b in ranges))]
        if reader_id is not None:
            where.append(table.c.reader_id == reader_id)
        if modality is not None:
            where.append(aggregates.lists_modality(table.c.modalities, modality))
        return sa.select(table.c.reader_id, table.c.modalities, column.label("d"),
                         *(table.c[c] for c in COUNT_COLUMNS)).where(*where)

    parts = [part(DAY, DAY.c.day, days)] if days else []
    if months:
        parts.append(part(MONTH, MONTH.c.month, [months]))
    if not parts:  # an empty period: one row of zeros, no groups
        parts.append(part(DAY, DAY.c.day, [(first, first)]))
    rows = sa.union_all(*parts).subquery("counts") if len(parts) > 1 else parts[0].subquery(
        "counts")
    keys = {"reader_id": rows.c.reader_id, "modalities": rows.c.modalities,
            "month": _month_key(rows.c.d, dialect)}
    sums = [sa.func.coalesce(sa.func.sum(rows.c[c]), 0).label(label)
            for c, label in zip(COUNT_COLUMNS, aggregates.COUNT_LABELS, strict=True)]
    stmt = sa.select(*(keys[k].label(k) for k in by), *sums)
    if by:
        stmt = stmt.group_by(*(keys[k] for k in by))
    return list(session.execute(stmt))


# --- upkeep --------------------------------------------------------------------------------

def _lock(session: Session, keys: Iterable[tuple[int, date]]) -> None:
    """Take the transaction's (reader, month) locks, in one order for every writer (no
    deadlock). SQLite has one writer at a time: nothing to take."""
    if aggregates.dialect_of(session) != "postgresql":
        return
    for reader_id, month in sorted(set(keys)):
        key = _LOCK_TAG | (reader_id << 20) | (month.year * 12 + month.month)
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))


def settle(session: Session) -> None:
    """Count now the buckets this session's changes marked (normally done at the commit):
    the session then reads its own writes from the summary tables."""
    session.flush()
    buckets = session.info.pop(BUCKETS, None)
    if buckets:
        recompute(session, buckets)


def recompute(session: Session, buckets: Iterable[tuple[int, date]]) -> int:
    """Count the (reader id, UTC day) buckets again from the raw rows, then their months.

    Returns the number of day buckets counted."""
    buckets = sorted(set(buckets))
    months = sorted({(reader, _month_start(day)) for reader, day in buckets})
    with session.no_autoflush:
        _lock(session, months)  # before counting: a concurrent writer's commit is seen
        for reader_id, day in buckets:
            rows = aggregates.grouped_counts(session, _midnight(day),
                                             _midnight(day + timedelta(days=1)),
                                             by=("modalities",), reader_id=reader_id)
            session.execute(sa.delete(DAY).where(DAY.c.reader_id == reader_id,
                                                 DAY.c.day == day))
            if rows:
                session.execute(sa.insert(DAY), [
                    {"day": day, "reader_id": reader_id, "modalities": row.modalities,
                     **{c: row[i + 1] for i, c in enumerate(COUNT_COLUMNS)}}
                    for row in rows])
        for reader_id, month in months:
            session.execute(sa.delete(MONTH).where(MONTH.c.reader_id == reader_id,
                                                   MONTH.c.month == month))
            session.execute(sa.insert(MONTH).from_select(
                ["month", "reader_id", "modalities", *COUNT_COLUMNS],
                _months_of_days(DAY.c.reader_id == reader_id, DAY.c.day >= month,
                                DAY.c.day < _next_month(month), month=month)))
    return len(buckets)


def _months_of_days(*where, month: date | None = None, dialect: str = "") -> sa.Select:
    """SELECT the month rows summed from the day rows (of one month when given)."""
    if month is not None:
        key = sa.literal(month, sa.Date)
        group = [DAY.c.reader_id, DAY.c.modalities]
    else:  # every month: its first day, as a date
        if dialect == "sqlite":
            key = sa.func.date(DAY.c.day, sa.literal_column("'start of month'"))
        else:
            key = sa.cast(sa.func.date_trunc(sa.literal_column("'month'"), DAY.c.day), sa.Date)
        group = [key, DAY.c.reader_id, DAY.c.modalities]
    return (sa.select(key, DAY.c.reader_id, DAY.c.modalities,
                      *(sa.func.sum(DAY.c[c]) for c in COUNT_COLUMNS))
            .where(*where).group_by(*group))


def rebuild(connection: sa.Connection) -> dict[str, int]:
    """Count every bucket again from the raw rows (after writes that bypass the ORM).

    On PostgreSQL the tables are locked against the incremental writers first (SHARE ROW
    EXCLUSIVE conflicts with their deletes and inserts): a writer waits, then counts its
    buckets again over what this rebuild wrote. Returns the rows written per table."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(sa.text("LOCK TABLE review_day_counts, review_month_counts "
                                   "IN SHARE ROW EXCLUSIVE MODE"))
    connection.execute(sa.delete(MONTH))
    connection.execute(sa.delete(DAY))
    cols = ["day", "reader_id", "modalities", *COUNT_COLUMNS]
    select = aggregates.grouped_select(dialect, None, None,
                                       by=("day", "reader_id", "modalities"))
    connection.execute(sa.insert(DAY).from_select(cols, select))
    connection.execute(sa.insert(MONTH).from_select(["month", *cols[1:]],
                                                    _months_of_days(dialect=dialect)))
    if dialect == "postgresql":  # the planner learns the new sizes now, not at autovacuum
        connection.execute(sa.text("ANALYZE review_day_counts, review_month_counts"))
    return {t.name: connection.scalar(sa.select(sa.func.count()).select_from(t))
            for t in (DAY, MONTH)}
