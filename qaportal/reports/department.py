"""Department QA summary: every reader's rate (coded), the funnel plot, cases, reviewers, SLAs.

Readers are R01, R02… and reviewers V01, V02… (ascending account id; the codes hold for
one report only) unless the QA manager asks for names. All figures come from
qaportal.qa.stats and qaportal.opinions.sla.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import sqlalchemy as sa
from markupsafe import Markup

from qaportal.extensions import db
from qaportal.models import (
    DiscrepancyCase,
    OriginalRead,
    Review,
    ReviewAssignment,
    User,
    utcnow,
)
from qaportal.models.discrepancy import CASE_STATUSES, OUTCOMES, STATUS_LABELS
from qaportal.models.review import RADPEER_SCORES
from qaportal.qa import stats
from qaportal.reports import qa_data
from qaportal.reports.qa_forms import DepartmentForm
from qaportal.reports.registry import ReportDefinition, register

# The report lists this many of the oldest open cases by number; the rest are counted in
# the age table (docs/reports.md).
OLDEST_OPEN_CASES = 25


def _case_counts(period: stats.Period) -> tuple[dict[str, int], dict[str, int]]:
    """Return cases about reads of the period by status, and decided ones by outcome."""
    start, end = period.bounds()
    rows = db.session.execute(
        sa.select(DiscrepancyCase.status, DiscrepancyCase.outcome, sa.func.count())
        .join(Review, Review.id == DiscrepancyCase.review_id)
        .join(ReviewAssignment, ReviewAssignment.id == Review.assignment_id)
        .join(OriginalRead, OriginalRead.id == ReviewAssignment.read_id)
        .where(OriginalRead.finalized_at >= start, OriginalRead.finalized_at < end)
        .group_by(DiscrepancyCase.status, DiscrepancyCase.outcome)
    ).all()
    by_status: Counter[str] = Counter()
    by_outcome: Counter[str] = Counter()
    for status, outcome, n in rows:
        by_status[status] += n
        if outcome and status in ("decided", "closed"):
            by_outcome[outcome] += n
    return ({s: by_status.get(s, 0) for s in CASE_STATUSES},
            {o: by_outcome.get(o, 0) for o in OUTCOMES})


def build_department(params: dict[str, Any], user: User | None) -> dict[str, Any]:
    """Gather the department's peer-review and second-opinion figures for the period."""
    session = db.session
    period = qa_data.period_of(params)
    show_names = bool(params.get("show_names"))
    now = utcnow()

    figures = stats.breakdown(session, period)
    readers = figures.readers
    volume = qa_data.read_volume(session, period)
    dept_summary = figures.total
    dept = dept_summary.rate
    p = dept.p or 0.0

    reader_codes = qa_data.codes(set(volume) | {r.reader_id for r in readers}, "R")
    names = dict(session.execute(sa.select(User.id, User.full_name)
                                 .where(User.id.in_(list(reader_codes)))).all()) \
        if show_names and reader_codes else {}

    def label(rid: int) -> str:
        return names.get(rid, reader_codes[rid]) if show_names else reader_codes[rid]

    stats_by_id = {r.reader_id: r for r in readers}
    rows = []
    for rid in sorted(reader_codes, key=lambda i: (label(i), i)):
        s = stats_by_id.get(rid)
        reads = sum(volume.get(rid, Counter()).values())
        position = stats.funnel_position(p, s.n, s.significant) if s else "within"
        rows.append({"code": reader_codes[rid], "label": label(rid), "reads": reads,
                     "stats": s, "position": position})
    outliers = {r["label"] for r in rows if r["position"] != "within"}
    points = [(r["label"], r["stats"].n, r["stats"].significant) for r in rows if r["stats"]]
    funnel = stats.funnel_svg(points, p, labels=outliers, height=330) if points else None
    trend = stats.trend_svg([(t.month, t.rate.n, t.rate.k) for t in figures.months], p,
                            height=210)

    reviewers = stats.reviewer_stats(session, now)
    reviewer_codes = qa_data.codes((r.reviewer_id for r in reviewers), "V")
    reviewer_rows = sorted(
        ({"label": r.reviewer_name if show_names else reviewer_codes[r.reviewer_id],
          "s": r, "completion": r.completed / r.assigned if r.assigned else None}
         for r in reviewers), key=lambda x: x["label"])

    # Aggregates for the totals, and only the oldest few cases themselves: the report reads
    # the same rows whether ten cases are open or ten thousand.
    by_age = qa_data.open_case_ages(session, now)
    oldest_open = qa_data.oldest_open_cases(session, now, OLDEST_OPEN_CASES)
    cases_by_status, cases_by_outcome = _case_counts(period)
    requests = qa_data.requested_in(session, period)
    turnaround = qa_data.turnaround_rows(requests, now)
    modality_volume: Counter[str] = Counter()
    for counter in volume.values():
        modality_volume.update(counter)

    return {
        "title": "Department QA summary",
        "subtitle": f"{period.start:%d %b %Y} – {period.end:%d %b %Y}",
        "period": period,
        "show_names": show_names,
        "rows": rows,
        "reader_count": len(rows),
        "total_reads": sum(modality_volume.values()),
        "dept": dept,
        "dept_summary": dept_summary,
        "outlier_count": len(outliers),
        "funnel": Markup(funnel) if funnel else None,  # noqa: S704 (our own SVG)
        "trend": Markup(trend) if dept.n else None,  # noqa: S704
        "scores": RADPEER_SCORES,
        "modalities": figures.modalities,
        "modality_volume": modality_volume,
        "reviewers": reviewer_rows,
        "by_age": by_age,
        "open_cases": sum(b.count for b in by_age),
        "oldest_open": oldest_open,
        "cases_by_status": cases_by_status,
        "cases_by_outcome": cases_by_outcome,
        "status_labels": STATUS_LABELS,
        "turnaround": turnaround,
        "turnaround_total": qa_data.turnaround_total(turnaround, requests),
        **qa_data.FORMATTERS,
    }


register("department", ReportDefinition(
    title="Department QA summary", form_class=DepartmentForm,
    build_context=build_department, template="pdf/department.html",
    description="All readers' significant-discrepancy rates (coded) on a funnel plot, "
                "discrepancy cases by status and age, reviewer completion, second-opinion "
                "turnaround and breaches.",
    confidential_default=True, signatories=("QA committee chair", "Medical director"),
))
