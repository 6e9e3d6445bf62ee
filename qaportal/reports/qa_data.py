"""Queries and formatting shared by the OPPE/FPPE packet and the department QA summary.

Rates, intervals, funnel limits and turnaround come from qaportal.qa.stats and
qaportal.opinions.sla; this module only gathers rows for them and formats numbers.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from qaportal.models import (
    DiscrepancyCase,
    OpinionRequest,
    OriginalRead,
    Study,
)
from qaportal.models.opinion import ACTIVE_STATUSES, PRIORITIES, PRIORITY_LABELS
from qaportal.opinions.sla import target_hours, turnaround_stats
from qaportal.qa import aggregates, stats
from qaportal.qa.stats import first_modality

POSITION_LABELS = {
    "high99": "Above the 99.8 % limit", "high95": "Above the 95 % limit",
    "within": "Within the expected range", "low95": "Below the 95 % limit",
    "low99": "Below the 99.8 % limit",
}


def period_of(params: dict[str, Any]) -> stats.Period:
    """Return the statistics period of a report's date range."""
    return stats.Period(params["date_from"], params["date_to"])


# --- formatting (the tests format expected values with these too) -------------------------

def pct(value: float | None, digits: int = 2) -> str:
    """Format a proportion as a percentage ("—" when undefined)."""
    return "—" if value is None else f"{value * 100:.{digits}f} %"


def rate_pct(rate: stats.Rate | None) -> str:
    """Format a rate's point estimate."""
    return pct(rate.p) if rate is not None else "—"


def rate_ci(rate: stats.Rate | None) -> str:
    """Format a rate's Wilson 95 % interval as "low–high %"."""
    if rate is None or not rate.n:
        return "—"
    return f"{rate.low * 100:.2f}–{rate.high * 100:.2f} %"


def reference_text(low: float, high: float | None) -> str:
    """Format a published reference rate or range."""
    return pct(low) if high is None else f"{low * 100:.2f}–{high * 100:.2f} %"


def minutes_text(minutes: float | None) -> str:
    """Format minutes as "45 min", "3.5 h" or "2.1 d"."""
    if minutes is None:
        return "—"
    if minutes < 90:
        return f"{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} d"


FORMATTERS = {"pct": pct, "rate_pct": rate_pct, "rate_ci": rate_ci,
              "reference_text": reference_text, "minutes_text": minutes_text,
              "position_labels": POSITION_LABELS, "references": stats.REFERENCE_RATES}


# --- case volume --------------------------------------------------------------------------

def read_volume(session: Session, period: stats.Period,
                reader_id: int | None = None) -> dict[int, Counter[str]]:
    """Return finalized original reads in the period per reader and (first) modality."""
    start, end = period.bounds()
    n = sa.func.count(OriginalRead.id)
    stmt = (sa.select(OriginalRead.reader_id, Study.modalities, n)
            .join(Study, Study.id == OriginalRead.study_id)
            .where(OriginalRead.finalized_at >= start, OriginalRead.finalized_at < end)
            .group_by(OriginalRead.reader_id, Study.modalities))
    if reader_id is not None:
        stmt = stmt.where(OriginalRead.reader_id == reader_id)
    out: dict[int, Counter[str]] = defaultdict(Counter)
    for rid, modalities, count in session.execute(stmt):
        out[rid][first_modality(modalities)] += count
    return out


# --- confirmed discrepancies --------------------------------------------------------------

@dataclass(frozen=True)
class ConfirmedItem:
    """A confirmed significant discrepancy, without any person's name or free text."""

    reference: str  # "Case 12" or "Review 34" (legacy, not adjudicated)
    read_date: datetime
    modality: str
    category: str | None
    reviewer_score: str
    final_score: str
    outcome: str | None
    status: str | None
    rated: bool = True  # from a sampled (or imported) review: in the rate; False: ad hoc


def confirmed_items(session: Session, period: stats.Period,
                    reader_id: int) -> list[ConfirmedItem]:
    """Return the reader's confirmed discrepancies on reads of the period (as
    stats.review_facts flags them), most recent read first: only those rows are read."""
    start, end = period.bounds()
    items = [
        ConfirmedItem(
            reference=f"Case {r.case_id}" if r.case_id else f"Review {r.id} (imported)",
            read_date=r.finalized_at, modality=first_modality(r.modalities),
            category=r.category, reviewer_score=r.score, final_score=r.final_score or r.score,
            outcome=r.outcome, status=r.status, rated=r.source in aggregates.RATE_SOURCES)
        for r in aggregates.confirmed_rows(session, start, end, reader_id=reader_id)
    ]
    return sorted(items, key=lambda i: (i.read_date, i.reference), reverse=True)


# --- second opinions ----------------------------------------------------------------------

@dataclass(frozen=True)
class TurnaroundRow:
    """Turnaround of one priority against its target."""

    priority: str
    label: str
    target_hours: float
    count: int
    median_minutes: float | None
    p90_minutes: float | None
    within_target: int
    breached: int
    requested: int = 0
    open_overdue: int = 0

    @property
    def within_rate(self) -> float | None:
        return self.within_target / self.count if self.count else None


def turnaround_rows(requests: list[RequestTimes], now: datetime) -> list[TurnaroundRow]:
    """Summarise requests per priority with opinions.sla.turnaround_stats, plus breaches."""
    summary = turnaround_stats(requests)
    rows = []
    for prio in PRIORITIES:
        mine = [r for r in requests if r.priority == prio]
        by = summary.by_priority[prio]
        breached = sum(1 for r in mine if r.breached_at is not None
                       or (r.signed_at is not None and r.signed_at > r.due_at))
        overdue = sum(1 for r in mine if r.is_active and r.due_at < now)
        rows.append(TurnaroundRow(
            priority=prio, label=PRIORITY_LABELS[prio], target_hours=target_hours(prio),
            count=int(by["count"] or 0), median_minutes=by["median_minutes"],
            p90_minutes=by["p90_minutes"], within_target=int(by["within_target"] or 0),
            breached=breached, requested=len(mine), open_overdue=overdue))
    return rows


def turnaround_total(rows: list[TurnaroundRow], requests: list[RequestTimes]) -> dict:
    """Return the all-priorities line of a turnaround table."""
    summary = turnaround_stats(requests)
    return {"count": summary.count, "median_minutes": summary.median_minutes,
            "p90_minutes": summary.p90_minutes, "within_target": summary.within_target,
            "within_rate": summary.within_target_rate,
            "breached": sum(r.breached for r in rows), "requested": len(requests),
            "open_overdue": sum(r.open_overdue for r in rows)}


@dataclass(frozen=True, slots=True)
class RequestTimes:
    """What the turnaround tables read of a second-opinion request: its priority, status and
    clocks (the attributes of OpinionRequest that opinions.sla.turnaround_stats reads), read
    as plain columns: a year of a department's requests is thousands of them."""

    priority: str
    status: str
    requested_at: datetime
    due_at: datetime
    signed_at: datetime | None
    breached_at: datetime | None
    turnaround_minutes: int | None

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


def _request_times(session: Session, *where) -> list[RequestTimes]:
    r = OpinionRequest
    stmt = sa.select(r.priority, r.status, r.requested_at, r.due_at, r.signed_at,
                     r.breached_at, r.turnaround_minutes).where(*where).order_by(r.id)
    return [RequestTimes(*row) for row in session.execute(stmt)]


def signed_by(session: Session, consultant_id: int, period: stats.Period) -> list[RequestTimes]:
    """Return the requests the consultant signed in the period."""
    start, end = period.bounds()
    return _request_times(
        session, OpinionRequest.consultant_id == consultant_id,
        OpinionRequest.status == "signed", OpinionRequest.signed_at >= start,
        OpinionRequest.signed_at < end)


def requested_in(session: Session, period: stats.Period) -> list[RequestTimes]:
    """Return every request made in the period (all statuses)."""
    start, end = period.bounds()
    return _request_times(session, OpinionRequest.requested_at >= start,
                          OpinionRequest.requested_at < end)


def codes(ids: Iterable[int], prefix: str) -> dict[int, str]:
    """Return stable codes (prefix + 01, 02…) for ids in ascending id order."""
    ordered = sorted(set(ids))
    width = max(2, len(str(len(ordered))))
    return {uid: f"{prefix}{i:0{width}d}" for i, uid in enumerate(ordered, 1)}


# --- open discrepancy cases: aggregates and a bounded list ---------------------------------

@dataclass(frozen=True)
class AgeBucket:
    """The open (not closed) cases of one age bucket: how many, and the oldest one's age."""

    label: str
    count: int
    oldest_days: int | None


def open_case_ages(session: Session, now: datetime) -> list[AgeBucket]:
    """Count open cases per age bucket (stats.AGE_BUCKETS) and find each bucket's oldest,
    in one aggregate statement: no case row is read, however many are open."""
    opened = DiscrepancyCase.opened_at
    cols, lower = [], None
    for limit, _ in stats.AGE_BUCKETS:
        # (now - opened).days <= limit exactly when opened > now - (limit + 1) days
        start = now - timedelta(days=limit + 1) if limit is not None else None
        conds = [c for c in (opened > start if start is not None else None,
                             opened <= lower if lower is not None else None) if c is not None]
        cond = sa.and_(*conds) if conds else sa.true()
        cols += [sa.func.count().filter(cond), sa.func.min(opened).filter(cond)]
        lower = start
    row = session.execute(sa.select(*cols).where(DiscrepancyCase.status != "closed")).one()
    out = []
    for i, (_, label) in enumerate(stats.AGE_BUCKETS):
        count, oldest = int(row[2 * i] or 0), row[2 * i + 1]
        out.append(AgeBucket(label, count,
                             max(0, (now - oldest).days) if oldest is not None else None))
    return out


@dataclass(frozen=True)
class OpenCase:
    """One open case as the report lists it: number, state, when opened, age in days."""

    case_id: int
    status: str
    opened_at: datetime
    age_days: int


def oldest_open_cases(session: Session, now: datetime, limit: int) -> list[OpenCase]:
    """The `limit` oldest open cases (ix_discrepancy_cases_active_opened), oldest first."""
    rows = session.execute(
        sa.select(DiscrepancyCase.id, DiscrepancyCase.status, DiscrepancyCase.opened_at)
        .where(DiscrepancyCase.status != "closed")
        .order_by(DiscrepancyCase.opened_at, DiscrepancyCase.id).limit(limit)).all()
    return [OpenCase(cid, status, opened, max(0, (now - opened).days))
            for cid, status, opened in rows]
