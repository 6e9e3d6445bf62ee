"""Peer-review statistics: every number the QA pages and PDF reports show, computed here.

Pure functions over a SQLAlchemy session or plain values; no Flask. Definitions:
- A review counts when submitted and scored on the RADPEER scale ("unable to assess" is
  left out of the denominator); ad-hoc reviews are counted separately, not in rates.
- A significant discrepancy is a confirmed 2b, 3a or 3b: the committee's final score when
  the review went to adjudication, else the review's own (amended) score (legacy imports).
  Cases still under adjudication are "pending" and not counted as confirmed.
- The period is that of the original reads (their finalization date, inclusive bounds).
The database does the counting (qaportal.qa.aggregates: grouped conditional counts over the
raw rows), kept per reader and day, and per reader and month, in summary tables
(qaportal/models/review_counts.py) that the pages read (qaportal.qa.summary: a year is a few
thousand small rows however many reviews it holds); this module folds the few grouped rows
into rates, Wilson intervals and funnel positions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from qaportal.models import DiscrepancyCase, User
from qaportal.qa import aggregates
from qaportal.qa import summary as summary_tables
from qaportal.qa.aggregates import COUNT_LABELS, RATE_SOURCES, SCORE_LABELS
from qaportal.qa.charts import funnel_svg, trend_svg

Z95 = 1.959964
Z998 = 3.090232

# Published reference rates (DOMAIN.md); the ACR says no official benchmark exists.
REFERENCE_RATES = (
    ("RADPEER pilot, score 2 (Borgstede, JACR 2004; 20,286 cases)", 0.029, None),
    ("RADPEER pilot, committee-confirmed 3–4 (Borgstede, JACR 2004)", 0.008, None),
    ("Teleradiology major discrepancies (AJR 2022;218:738; 5.9 M exams)", 0.0014, None),
    ("Clinically significant discordance, several studies", 0.006, 0.014),
)


@dataclass(frozen=True)
class Period:
    """Inclusive range of dates of the original reads."""

    start: date
    end: date

    def bounds(self) -> tuple[datetime, datetime]:
        """Return [start, end + 1 day) as UTC datetimes."""
        return (datetime.combine(self.start, time(), UTC),
                datetime.combine(self.end + timedelta(days=1), time(), UTC))

    @classmethod
    def default(cls, today: date | None = None) -> Period:
        """Return the period every QA page starts from: the 12 months ending today."""
        today = today or date.today()
        try:
            year_ago = today.replace(year=today.year - 1)
        except ValueError:  # 29 February
            year_ago = today.replace(year=today.year - 1, day=28)
        return cls(year_ago + timedelta(days=1), today)

    @property
    def label(self) -> str:
        """Return the period as people write it, e.g. "4 Dec 2025 – 3 Dec 2026"."""
        return f"{self.start.day} {self.start:%b %Y} – {self.end.day} {self.end:%b %Y}"

    @classmethod
    def last_months(cls, months: int, today: date | None = None) -> Period:
        """Return the period covering the last N whole-or-current months up to today."""
        today = today or date.today()
        y, m = today.year, today.month - months + 1
        while m <= 0:
            y, m = y - 1, m + 12
        return cls(date(y, m, 1), today)


@dataclass(frozen=True)
class Rate:
    """k events in n trials with a Wilson interval."""

    k: int
    n: int
    low: float
    high: float

    @property
    def p(self) -> float | None:
        return self.k / self.n if self.n else None


@dataclass(frozen=True)
class ReviewFact:
    """One counted review, flattened."""

    review_id: int
    reader_id: int
    reviewer_id: int
    modality: str
    month: str  # YYYY-MM of the read
    score: str  # effective reviewer score
    source: str
    confirmed: bool  # counts as a significant discrepancy
    pending: bool  # significant score still under adjudication


@dataclass
class ReaderStats:
    """A reader's reviews received, distribution and significant-discrepancy rate."""

    reader_id: int
    reader_name: str
    n: int = 0
    distribution: dict[str, int] = field(default_factory=dict)
    significant: int = 0
    pending: int = 0
    unable: int = 0
    adhoc: int = 0
    rate: Rate | None = None


@dataclass(frozen=True)
class ReviewerStats:
    """A reviewer's workload."""

    reviewer_id: int
    reviewer_name: str
    assigned: int
    completed: int
    open: int
    overdue: int


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Return the Wilson score interval for k successes in n trials ((0, 1) when n = 0)."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ValueError("k must be between 0 and n")
    p = k / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def make_rate(k: int, n: int, z: float = 1.96) -> Rate:
    """Return a Rate with its Wilson interval."""
    low, high = wilson_interval(k, n, z)
    return Rate(k, n, low, high)


def funnel_limits(p: float, ns: Iterable[int], z: float) -> list[tuple[int, float, float]]:
    """Return (n, lower, upper) control limits p ± z·sqrt(p(1-p)/n), clipped to [0, 1]."""
    out = []
    for n in ns:
        if n <= 0:
            out.append((n, 0.0, 1.0))
            continue
        half = z * math.sqrt(p * (1 - p) / n)
        out.append((n, max(0.0, p - half), min(1.0, p + half)))
    return out


def funnel_position(p: float, n: int, k: int) -> str:
    """Return 'high99', 'high95', 'low95', 'low99' or 'within' for a point on the funnel."""
    if n <= 0:
        return "within"
    rate = k / n
    (_, lo95, hi95), = funnel_limits(p, [n], Z95)
    (_, lo99, hi99), = funnel_limits(p, [n], Z998)
    if rate > hi99:
        return "high99"
    if rate > hi95:
        return "high95"
    if rate < lo99:
        return "low99"
    if rate < lo95:
        return "low95"
    return "within"


def _from_counts(counts: Sequence[int], reader_id: int = 0, reader_name: str = "",
                 z: float = 1.96) -> ReaderStats:
    """Return the figures of one group's counts (in the order of aggregates.COUNT_LABELS)."""
    c = dict(zip(COUNT_LABELS, counts, strict=True))
    distribution = {score: c[label] for score, label in SCORE_LABELS.items()}
    n = sum(distribution.values())
    return ReaderStats(reader_id, reader_name, n=n, distribution=distribution,
                       significant=c["significant"], pending=c["pending"], unable=c["unable"],
                       adhoc=c["adhoc"], rate=make_rate(c["significant"], n, z))


def _add(into: dict, key, counts: Sequence[int]) -> None:
    """Add counts to into[key] elementwise."""
    have = into.get(key)
    into[key] = list(counts) if have is None else [x + y for x, y in zip(have, counts,
                                                                           strict=True)]


def empty_stats() -> ReaderStats:
    """Return the figures of no reviews at all."""
    return _from_counts([0] * len(COUNT_LABELS))


def first_modality(modalities: str | None) -> str:
    """Return the first-listed modality of a study ("CT/MR" → "CT"; none → "?")."""
    return (modalities or "").split("/")[0] or "?"


@dataclass(frozen=True)
class TrendPoint:
    """One month of the trend."""

    month: str
    rate: Rate


@dataclass(frozen=True)
class Breakdown:
    """A period's figures: in all, per reader (by name), per first modality, per month."""

    total: ReaderStats
    readers: list[ReaderStats]
    modalities: dict[str, ReaderStats]
    months: list[TrendPoint]


def period_months(period: Period) -> list[str]:
    """Return every calendar month of the period as "YYYY-MM"."""
    out = []
    y, m = period.start.year, period.start.month
    while (y, m) <= (period.end.year, period.end.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def breakdown(session: Session, period: Period, modality: str | None = None, *,
              reader_id: int | None = None) -> Breakdown:
    """Return the period's figures (of one reader when given) from one grouped query.

    The database counts per (reader, listed modalities, month); the few groups are folded
    here into the totals, readers, first modalities and months the pages show.
    """
    start, end = period.bounds()
    by = ("reader_id", "modalities", "month")
    rows = summary_tables.grouped_counts(session, start, end, by=by,
                                         modality=modality, reader_id=reader_id)
    total, readers, modalities, months = [0] * len(COUNT_LABELS), {}, {}, {}
    for row in rows:
        counts = tuple(row)[len(by):]
        total = [x + y for x, y in zip(total, counts, strict=True)]
        _add(readers, row.reader_id, counts)
        _add(modalities, first_modality(row.modalities), counts)
        _add(months, row.month, counts)
    names = _names(session, readers)
    zero = [0] * len(COUNT_LABELS)
    return Breakdown(
        total=_from_counts(total),
        readers=sorted((_from_counts(c, rid, names.get(rid, f"#{rid}"))
                        for rid, c in readers.items()),
                       key=lambda s: (s.reader_name, s.reader_id)),
        modalities={m: _from_counts(c) for m, c in sorted(modalities.items())},
        months=[TrendPoint(m, _from_counts(months.get(m, zero)).rate)
                for m in period_months(period)],
    )


def summary(session: Session, period: Period, modality: str | None = None, *,
            reader_id: int | None = None) -> ReaderStats:
    """Return the period's counts in all (of one reader when given): one aggregate row."""
    start, end = period.bounds()
    (row,) = summary_tables.grouped_counts(session, start, end, modality=modality,
                                           reader_id=reader_id)
    return _from_counts(tuple(row), reader_id or 0)


def department_rate(session: Session, period: Period, modality: str | None = None) -> Rate:
    """Return the department's significant-discrepancy rate for the period."""
    return summary(session, period, modality).rate


def reader_stats(session: Session, period: Period,
                 modality: str | None = None) -> list[ReaderStats]:
    """Return per-reader statistics for the period (and modality), by reader name."""
    start, end = period.bounds()
    rows = summary_tables.grouped_counts(session, start, end, by=("reader_id",),
                                         modality=modality)
    names = _names(session, [r.reader_id for r in rows])
    out = [_from_counts(tuple(row)[1:], row.reader_id, names.get(row.reader_id,
                                                                   f"#{row.reader_id}"))
           for row in rows]
    return sorted(out, key=lambda s: (s.reader_name, s.reader_id))


def review_facts(session: Session, period: Period, modality: str | None = None, *,
                 reader_id: int | None = None) -> list[ReviewFact]:
    """Return the period's submitted reviews one by one (meant for one reader's: the OPPE
    packet lists its confirmed discrepancies), flattened, by review id."""
    start, end = period.bounds()
    return [
        ReviewFact(
            review_id=r.id, reader_id=r.reader_id, reviewer_id=r.reviewer_id,
            modality=first_modality(r.modalities),
            month=f"{r.finalized_at.year:04d}-{r.finalized_at.month:02d}",
            score=r.score, source=r.source, confirmed=bool(r.confirmed),
            pending=bool(r.pending),
        )
        for r in aggregates.review_rows(session, start, end, modality=modality,
                                        reader_id=reader_id)
    ]


def reviewer_stats(session: Session, now: datetime) -> list[ReviewerStats]:
    """Return each reviewer's assigned, completed, open and overdue reviews (not legacy),
    read from the per-reviewer status counts (qaportal.qa.workload)."""
    from qaportal.qa import workload

    return [ReviewerStats(*row) for row in workload.reviewer_rows(session, now)]


AGE_BUCKETS = ((7, "0–7 days"), (30, "8–30 days"), (90, "31–90 days"), (None, "over 90 days"))


def age_bucket(days: int) -> str:
    """Return the label of the age bucket a number of days falls in."""
    for limit, label in AGE_BUCKETS:
        if limit is None or days <= limit:
            return label
    raise AssertionError("unreachable")


def open_cases_by_age(session: Session, now: datetime, limit: int | None = None
                      ) -> dict[str, list[tuple[int, int]]]:
    """Return open (not closed) cases as (case id, age in days) per age bucket, oldest first;
    the `limit` oldest only when given (ix_discrepancy_cases_active_opened)."""
    rows = session.execute(
        sa.select(DiscrepancyCase.id, DiscrepancyCase.opened_at)
        .where(DiscrepancyCase.status != "closed")
        .order_by(DiscrepancyCase.opened_at, DiscrepancyCase.id).limit(limit)
    ).all()
    out: dict[str, list[tuple[int, int]]] = {label: [] for _, label in AGE_BUCKETS}
    for case_id, opened in rows:
        days = max(0, (now - opened).days)
        out[age_bucket(days)].append((case_id, days))
    return out


def open_case_age_counts(session: Session, now: datetime) -> dict[str, int]:
    """Return the number of open (not closed) cases per age bucket, counted in one statement."""
    opened = DiscrepancyCase.opened_at
    # (now - opened).days <= limit exactly when opened > now - (limit + 1) days
    cols = [sa.func.count().filter(opened > now - timedelta(days=limit + 1))
            for limit, _ in AGE_BUCKETS if limit is not None]
    row = session.execute(sa.select(*cols, sa.func.count())
                          .where(DiscrepancyCase.status != "closed")).one()
    cumulative = [int(n or 0) for n in row]
    labels = [label for _, label in AGE_BUCKETS]
    return {label: n - (cumulative[i - 1] if i else 0)
            for i, (label, n) in enumerate(zip(labels, cumulative, strict=True))}


def _names(session: Session, ids) -> dict[int, str]:
    ids = list(ids)
    if not ids:
        return {}
    return dict(session.execute(sa.select(User.id, User.full_name).where(User.id.in_(ids))).all())


__all__ = [
    "AGE_BUCKETS", "RATE_SOURCES", "REFERENCE_RATES", "Z95", "Z998", "Breakdown", "Period",
    "Rate", "ReaderStats", "ReviewFact", "ReviewerStats", "TrendPoint", "age_bucket",
    "breakdown", "department_rate", "empty_stats", "first_modality", "funnel_limits",
    "funnel_position", "funnel_svg", "make_rate", "open_case_age_counts", "open_cases_by_age",
    "period_months",
    "reader_stats",
    "review_facts", "reviewer_stats", "summary", "trend_svg", "wilson_interval",
]
