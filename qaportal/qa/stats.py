"""Peer-review statistics: every number the QA pages and PDF reports show, computed here.

Pure functions over a SQLAlchemy session or plain values; no Flask. Definitions:
- A review counts when submitted and scored on the RADPEER scale ("unable to assess" is
  left out of the denominator); ad-hoc reviews are counted separately, not in rates.
- A significant discrepancy is a confirmed 2b, 3a or 3b: the committee's final score when
  the review went to adjudication, else the review's own (amended) score (legacy imports).
  Cases still under adjudication are "pending" and not counted as confirmed.
- The period is that of the original reads (their finalization date, inclusive bounds).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from qaportal.models import (
    DiscrepancyCase,
    OriginalRead,
    Review,
    ReviewAmendment,
    ReviewAssignment,
    Study,
    User,
)
from qaportal.models.review import RADPEER_SCORES, SIGNIFICANT_SCORES
from qaportal.qa.charts import funnel_svg, trend_svg

Z95 = 1.959964
Z998 = 3.090232
RATE_SOURCES = ("sample", "legacy")

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


def _has_modality(modalities: str, modality: str | None) -> bool:
    return modality is None or modality.upper() in modalities.upper().split("/")


def review_facts(session: Session, period: Period, modality: str | None = None, *,
                 reader_id: int | None = None) -> list[ReviewFact]:
    """Load every submitted review of reads finalized in the period, flattened."""
    start, end = period.bounds()
    stmt = (
        sa.select(Review.id, Review.score, Review.category, ReviewAssignment.reviewer_id,
                  ReviewAssignment.source, OriginalRead.reader_id, OriginalRead.finalized_at,
                  Study.modalities, DiscrepancyCase.status, DiscrepancyCase.final_score)
        .join(ReviewAssignment, Review.assignment_id == ReviewAssignment.id)
        .join(OriginalRead, ReviewAssignment.read_id == OriginalRead.id)
        .join(Study, OriginalRead.study_id == Study.id)
        .outerjoin(DiscrepancyCase, DiscrepancyCase.review_id == Review.id)
        .order_by(Review.id)
    )
    if reader_id is not None:
        stmt = stmt.where(OriginalRead.reader_id == reader_id,
                          OriginalRead.finalized_at >= start, OriginalRead.finalized_at < end)
    else:
        # The period's reads as a semi-join: only reviewed reads are then joined to their
        # study (joining every read of the period first made a year's report 2-3x slower).
        stmt = stmt.where(ReviewAssignment.read_id.in_(
            sa.select(OriginalRead.id).where(OriginalRead.finalized_at >= start,
                                             OriginalRead.finalized_at < end)))
    rows = session.execute(stmt).all()
    amended = dict(session.execute(
        sa.select(ReviewAmendment.review_id, ReviewAmendment.score).order_by(ReviewAmendment.id)
    ).all())  # later amendments overwrite earlier ones in the dict
    facts = []
    for r in rows:
        if not _has_modality(r.modalities or "", modality):
            continue
        score = amended.get(r.id, r.score)
        if r.status is None:
            confirmed, pending = score in SIGNIFICANT_SCORES, False
        elif r.status in ("decided", "closed"):
            confirmed, pending = r.final_score in SIGNIFICANT_SCORES, False
        else:
            confirmed, pending = False, score in SIGNIFICANT_SCORES
        facts.append(ReviewFact(
            review_id=r.id, reader_id=r.reader_id, reviewer_id=r.reviewer_id,
            modality=(r.modalities or "").split("/")[0] or "?",
            month=f"{r.finalized_at.year:04d}-{r.finalized_at.month:02d}",  # not strftime:
            score=score, source=r.source,  # it was half the time of a year's report
            confirmed=confirmed, pending=pending,
        ))
    return facts


def summarize(facts: Iterable[ReviewFact], z: float = 1.96) -> ReaderStats:
    """Count reviews, scores, confirmed and pending discrepancies over some facts."""
    s = ReaderStats(reader_id=0, reader_name="")
    dist: Counter[str] = Counter()
    for f in facts:
        if f.source not in RATE_SOURCES:
            s.adhoc += 1
            continue
        if f.score not in RADPEER_SCORES:
            s.unable += 1
            continue
        s.n += 1
        dist[f.score] += 1
        s.significant += f.confirmed
        s.pending += f.pending
    s.distribution = {sc: dist.get(sc, 0) for sc in RADPEER_SCORES}
    s.rate = make_rate(s.significant, s.n, z)
    return s


def department_rate(session_or_facts, period: Period | None = None,
                    modality: str | None = None) -> Rate:
    """Return the department's significant-discrepancy rate (from a session or facts)."""
    if hasattr(session_or_facts, "execute"):  # a Session or a scoped_session
        facts = review_facts(session_or_facts, period, modality)
    else:
        facts = list(session_or_facts)
    return summarize(facts).rate


def reader_stats(session: Session, period: Period, modality: str | None = None,
                 facts: Sequence[ReviewFact] | None = None) -> list[ReaderStats]:
    """Return per-reader statistics for the period (and modality), by reader name."""
    facts = review_facts(session, period, modality) if facts is None else facts
    by_reader: dict[int, list[ReviewFact]] = defaultdict(list)
    for f in facts:
        by_reader[f.reader_id].append(f)
    names = _names(session, by_reader)
    out = []
    for reader_id, items in by_reader.items():
        s = summarize(items)
        s.reader_id, s.reader_name = reader_id, names.get(reader_id, f"#{reader_id}")
        out.append(s)
    return sorted(out, key=lambda s: (s.reader_name, s.reader_id))


def modality_breakdown(facts: Iterable[ReviewFact]) -> dict[str, ReaderStats]:
    """Return statistics per (first-listed) modality of the given facts."""
    groups: dict[str, list[ReviewFact]] = defaultdict(list)
    for f in facts:
        groups[f.modality].append(f)
    return {m: summarize(items) for m, items in sorted(groups.items())}


@dataclass(frozen=True)
class TrendPoint:
    """One month of the trend."""

    month: str
    rate: Rate


def monthly_trend(facts: Iterable[ReviewFact], period: Period) -> list[TrendPoint]:
    """Return the rate per calendar month of the period (empty months included)."""
    groups: dict[str, list[ReviewFact]] = defaultdict(list)
    for f in facts:
        groups[f.month].append(f)
    out = []
    y, m = period.start.year, period.start.month
    while (y, m) <= (period.end.year, period.end.month):
        key = f"{y:04d}-{m:02d}"
        out.append(TrendPoint(key, summarize(groups.get(key, [])).rate))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def reviewer_stats(session: Session, now: datetime) -> list[ReviewerStats]:
    """Return each reviewer's assigned, completed, open and overdue reviews (not legacy)."""
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
        .where(a.source != "legacy", a.status != "cancelled")
        .group_by(a.reviewer_id, User.full_name)
        .order_by(User.full_name)
    ).all()
    return [ReviewerStats(r[0], r[1], int(r[2]), int(r[3] or 0), int(r[4] or 0), int(r[5] or 0))
            for r in rows]


AGE_BUCKETS = ((7, "0–7 days"), (30, "8–30 days"), (90, "31–90 days"), (None, "over 90 days"))


def age_bucket(days: int) -> str:
    """Return the label of the age bucket a number of days falls in."""
    for limit, label in AGE_BUCKETS:
        if limit is None or days <= limit:
            return label
    raise AssertionError("unreachable")


def open_cases_by_age(session: Session, now: datetime) -> dict[str, list[tuple[int, int]]]:
    """Return open (not closed) cases as (case id, age in days) per age bucket, oldest first."""
    rows = session.execute(
        sa.select(DiscrepancyCase.id, DiscrepancyCase.opened_at)
        .where(DiscrepancyCase.status != "closed").order_by(DiscrepancyCase.opened_at)
    ).all()
    out: dict[str, list[tuple[int, int]]] = {label: [] for _, label in AGE_BUCKETS}
    for case_id, opened in rows:
        days = max(0, (now - opened).days)
        out[age_bucket(days)].append((case_id, days))
    return out


def _names(session: Session, ids) -> dict[int, str]:
    ids = list(ids)
    if not ids:
        return {}
    return dict(session.execute(sa.select(User.id, User.full_name).where(User.id.in_(ids))).all())


__all__ = [
    "AGE_BUCKETS", "RATE_SOURCES", "REFERENCE_RATES", "Z95", "Z998", "Period", "Rate",
    "ReaderStats", "ReviewFact", "ReviewerStats", "TrendPoint", "age_bucket",
    "department_rate", "funnel_limits", "funnel_position", "funnel_svg", "make_rate",
    "modality_breakdown", "monthly_trend", "open_cases_by_age", "reader_stats",
    "review_facts", "reviewer_stats", "summarize", "trend_svg", "wilson_interval",
]
