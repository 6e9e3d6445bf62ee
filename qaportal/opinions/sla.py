"""Deadlines: due times from the configured targets, warning and breach, turnaround."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app

from qaportal.models import OpinionRequest, utcnow


def target_hours(priority: str) -> float:
    """Return the turnaround target of a priority, in hours."""
    return float(current_app.config["OPINION_TARGET_HOURS"][priority])


def due_time(priority: str, requested_at: datetime) -> datetime:
    """Return when a request made at requested_at is due."""
    return requested_at + timedelta(hours=target_hours(priority))


def sla_state(req: OpinionRequest, now: datetime | None = None) -> str:
    """Return 'done', 'overdue', 'approaching' or 'ok' for a request's clock."""
    if not req.is_active:
        return "done"
    now = now or utcnow()
    if now >= req.due_at:
        return "overdue"
    window = (req.due_at - req.requested_at).total_seconds()
    left = (req.due_at - now).total_seconds()
    if window > 0 and left <= window * current_app.config["OPINION_WARN_FRACTION"]:
        return "approaching"
    return "ok"


def turnaround_minutes(req: OpinionRequest) -> int | None:
    """Return minutes from request to signature, or None while unsigned."""
    if req.signed_at is None:
        return None
    return int((req.signed_at - req.requested_at).total_seconds() // 60)


@dataclass(frozen=True)
class TurnaroundStats:
    """Turnaround of signed requests against their targets."""

    count: int
    median_minutes: float | None
    p90_minutes: float | None
    within_target: int
    by_priority: dict[str, dict[str, float | int | None]]

    @property
    def within_target_rate(self) -> float | None:
        return self.within_target / self.count if self.count else None


def _summary(minutes: list[int], targets: list[float]) -> tuple:
    if not minutes:
        return 0, None, None, 0
    ordered = sorted(minutes)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    within = sum(1 for m, t in zip(minutes, targets, strict=True) if m <= t)
    return len(minutes), float(statistics.median(ordered)), float(p90), within


def turnaround_stats(requests: Iterable[OpinionRequest]) -> TurnaroundStats:
    """Summarise turnaround (median, 90th percentile, within target) of signed requests
    (OpinionRequest, or rows with its priority, status and clocks: qa_data.RequestTimes)."""
    rows = [(r.priority, r.turnaround_minutes if r.turnaround_minutes is not None
             else turnaround_minutes(r),
             (r.due_at - r.requested_at).total_seconds() / 60)
            for r in requests if r.status == "signed"]
    rows = [row for row in rows if row[1] is not None]
    count, median, p90, within = _summary([m for _, m, _ in rows], [t for _, _, t in rows])
    by_priority = {}
    for prio in ("stat", "urgent", "routine"):
        sub = [(m, t) for p, m, t in rows if p == prio]
        c, med, p, w = _summary([m for m, _ in sub], [t for _, t in sub])
        by_priority[prio] = {"count": c, "median_minutes": med, "p90_minutes": p,
                             "within_target": w}
    return TurnaroundStats(count, median, p90, within, by_priority)
