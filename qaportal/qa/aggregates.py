"""The SQL behind the peer-review statistics: counts grouped in the database, not in Python.

qaportal.qa.stats states the definitions and folds these rows into its figures; this module
only writes them as SQLAlchemy expressions, so that a year of a large department is one
aggregate query rather than every review loaded and counted row by row:
- a review's effective score is its latest amendment's score, else its own;
- it is confirmed when its case was decided or closed with a significant final score, or
  (no case: legacy imports) when its effective score is significant; pending when a case is
  still open with a significant effective score;
- ad hoc reviews, then "unable to assess" ones, are counted apart from the rated ones.
Each count is `count(*) FILTER (WHERE ...)` (PostgreSQL, and SQLite since 3.30).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from qaportal.models import (
    DiscrepancyCase,
    OriginalRead,
    Review,
    ReviewAmendment,
    ReviewAssignment,
    Study,
)
from qaportal.models.review import RADPEER_SCORES, SIGNIFICANT_SCORES

RATE_SOURCES = ("sample", "legacy")
DECIDED = ("decided", "closed")
# Column labels of the score counts: "s_1", "s_2a"...
SCORE_LABELS = {score: f"s_{score}" for score in RADPEER_SCORES}
COUNT_LABELS = ("adhoc", "unable", *SCORE_LABELS.values(), "significant", "pending")


def year_month(column, dialect: str):
    """Return an SQL expression for the "YYYY-MM" (UTC) of a datetime column.

    The constants are literal SQL, not bound parameters: PostgreSQL sees the expression in
    the GROUP BY as the one in the select list only when both are written identically.
    """
    if dialect == "sqlite":  # UTC datetimes are stored as naive "YYYY-MM-DD HH:MM:SS…"
        return sa.func.strftime(sa.literal_column("'%Y-%m'"), column)
    if dialect == "postgresql":
        return sa.func.to_char(sa.func.timezone(sa.literal_column("'UTC'"), column),
                               sa.literal_column("'YYYY-MM'"))
    raise NotImplementedError(f"no month bucketing for the {dialect} database")


def utc_date(column, dialect: str):
    """Return an SQL expression for the UTC calendar day of a datetime column (a DATE on
    PostgreSQL, "YYYY-MM-DD" text on SQLite, which is how SQLite stores a date)."""
    if dialect == "sqlite":
        return sa.func.date(column)
    if dialect == "postgresql":
        return sa.cast(sa.func.timezone(sa.literal_column("'UTC'"), column), sa.Date)
    raise NotImplementedError(f"no day bucketing for the {dialect} database")


def dialect_of(session: Session) -> str:
    """Return the name of the database dialect the session talks to."""
    return session.get_bind().dialect.name


def _latest_amendment():
    """Each amended review's latest amendment id (amendments are few)."""
    return (sa.select(ReviewAmendment.review_id,
                      sa.func.max(ReviewAmendment.id).label("amendment_id"))
            .group_by(ReviewAmendment.review_id).subquery("latest_amendment"))


def lists_modality(column, modality: str):
    """Return the condition that a modalities column ("CT/MR") lists the modality."""
    # "CT/MR" lists CT and MR: match "/CT/" inside "/CT/MR/" (the value's wildcards are
    # escaped, so "C_" matches nothing).
    listed = "/" + sa.func.upper(sa.func.coalesce(column, "")) + "/"
    return listed.contains(f"/{modality.upper()}/", autoescape=True)


def _reviews_of_period(start: datetime | None, end: datetime | None, modality: str | None,
                       reader_id: int | None, *, studies: bool = True):
    """Return (FROM clause, WHERE conditions, effective-score expressions) for the period's
    submitted reviews of reads finalized in [start, end), optionally one reader's or those of
    studies listing the modality. The studies are joined only when needed (`studies` or a
    modality): theirs is the widest table. No bounds (None, None): every finalized read."""
    latest = _latest_amendment()
    amendment = aliased(ReviewAmendment, name="amendment")
    from_ = (
        sa.join(Review, ReviewAssignment, Review.assignment_id == ReviewAssignment.id)
        .join(OriginalRead, ReviewAssignment.read_id == OriginalRead.id)
    )
    if studies or modality is not None:
        from_ = from_.join(Study, OriginalRead.study_id == Study.id)
    from_ = (
        from_.outerjoin(DiscrepancyCase, DiscrepancyCase.review_id == Review.id)
        .outerjoin(latest, latest.c.review_id == Review.id)
        .outerjoin(amendment, amendment.id == latest.c.amendment_id)
    )
    if start is None or end is None:
        where = [OriginalRead.finalized_at.is_not(None)]
    else:
        where = [OriginalRead.finalized_at >= start, OriginalRead.finalized_at < end]
    if reader_id is not None:
        where.append(OriginalRead.reader_id == reader_id)
    if modality is not None:
        where.append(lists_modality(Study.modalities, modality))
    score = sa.func.coalesce(amendment.score, Review.score)
    status = DiscrepancyCase.status
    confirmed = sa.or_(
        sa.and_(status.is_(None), score.in_(SIGNIFICANT_SCORES)),
        sa.and_(status.in_(DECIDED), DiscrepancyCase.final_score.in_(SIGNIFICANT_SCORES)),
    )
    pending = sa.and_(status.is_not(None), status.not_in(DECIDED),
                      score.in_(SIGNIFICANT_SCORES))
    # the latest amendment's category, even when it cleared it; else the review's own
    category = sa.case((amendment.id.is_not(None), amendment.category), else_=Review.category)
    return from_, where, {"score": score, "category": category, "confirmed": confirmed,
                          "pending": pending}


def _count_columns(expr: dict) -> list:
    score, rated = expr["score"], ReviewAssignment.source.in_(RATE_SOURCES)
    scored = sa.and_(rated, score.in_(RADPEER_SCORES))

    def count(*conditions):
        return sa.func.count().filter(sa.and_(*conditions))

    return [
        count(sa.not_(rated)).label("adhoc"),
        count(rated, score.not_in(RADPEER_SCORES)).label("unable"),
        *(count(rated, score == s).label(label) for s, label in SCORE_LABELS.items()),
        count(scored, expr["confirmed"]).label("significant"),
        count(scored, expr["pending"]).label("pending"),
    ]


def grouped_select(dialect: str, start: datetime | None, end: datetime | None, *,
                   by: Sequence[str] = (), modality: str | None = None,
                   reader_id: int | None = None) -> sa.Select:
    """Return the SELECT of grouped_counts (keys labelled as named, then COUNT_LABELS)."""
    from_, where, expr = _reviews_of_period(start, end, modality, reader_id,
                                            studies="modalities" in by)
    keys = {
        "reader_id": OriginalRead.reader_id,
        "modalities": sa.func.coalesce(Study.modalities, ""),
        "month": year_month(OriginalRead.finalized_at, dialect),
        "day": utc_date(OriginalRead.finalized_at, dialect),
    }
    group = [keys[k].label(k) for k in by]
    stmt = sa.select(*group, *_count_columns(expr)).select_from(from_).where(*where)
    if group:
        stmt = stmt.group_by(*(keys[k] for k in by))
    return stmt


def grouped_counts(session: Session, start: datetime, end: datetime, *,
                   by: Sequence[str] = (), modality: str | None = None,
                   reader_id: int | None = None) -> list[sa.Row]:
    """Return the period's review counts (COUNT_LABELS) per group, counted from the raw rows.

    `by` names the grouping keys, any of "reader_id", "modalities" (the study's listed
    modalities as stored), "month" ("YYYY-MM" of the read) and "day" (its UTC date); no key
    gives one row. The pages read the same figures from the summary tables
    (qaportal.qa.summary); this is the reference they are kept equal to.
    """
    stmt = grouped_select(dialect_of(session), start, end, by=by, modality=modality,
                          reader_id=reader_id)
    return list(session.execute(stmt))


def review_rows(session: Session, start: datetime, end: datetime, *,
                modality: str | None = None, reader_id: int | None = None) -> list[sa.Row]:
    """Return the period's reviews one by one (effective score, confirmed, pending), by id."""
    from_, where, expr = _reviews_of_period(start, end, modality, reader_id)
    stmt = (
        sa.select(Review.id, ReviewAssignment.reviewer_id, ReviewAssignment.source,
                  OriginalRead.reader_id, OriginalRead.finalized_at, Study.modalities,
                  expr["score"].label("score"), expr["confirmed"].label("confirmed"),
                  expr["pending"].label("pending"))
        .select_from(from_).where(*where).order_by(Review.id)
    )
    return list(session.execute(stmt))


def confirmed_rows(session: Session, start: datetime, end: datetime, *,
                   reader_id: int | None = None) -> list[sa.Row]:
    """Return the period's confirmed reviews only (those review_rows flags `confirmed`), with
    what a listing of them shows: effective score and category, the assignment's source
    (an ad hoc review's is listed but not in the rate), the read's finalization time and
    modalities, and the case's number, final score, outcome and status (None for
    a legacy review without a case). A reader's year holds a few of them among thousands of
    reviews: the database picks them out."""
    from_, where, expr = _reviews_of_period(start, end, None, reader_id)
    stmt = (
        sa.select(Review.id, expr["score"].label("score"), expr["category"].label("category"),
                  ReviewAssignment.source, OriginalRead.finalized_at, Study.modalities,
                  DiscrepancyCase.id.label("case_id"), DiscrepancyCase.final_score,
                  DiscrepancyCase.outcome, DiscrepancyCase.status)
        .select_from(from_).where(*where, expr["confirmed"]).order_by(Review.id)
    )
    return list(session.execute(stmt))
