"""QA dashboard and statistics."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from flask import render_template, request
from markupsafe import Markup

from qaportal import audit
from qaportal.extensions import db
from qaportal.models import DiscrepancyCase, ReviewAssignment, utcnow
from qaportal.models.discrepancy import STATUS_LABELS
from qaportal.models.review import RADPEER_SCORES
from qaportal.models.reviewer_workload import open_assignments
from qaportal.permissions import role_required
from qaportal.qa import bp, stats
from qaportal.qa.forms import StatsFilter

# The dashboard lists this many open cases (the oldest); the full list is /qa/cases, paged.
DASHBOARD_OPEN_CASES = 20


@bp.route("/")
@role_required("qa_manager")
def dashboard():
    now = utcnow()
    by_age = stats.open_cases_by_age(db.session, now, limit=DASHBOARD_OPEN_CASES)
    age_counts = stats.open_case_age_counts(db.session, now)
    case_ids = [cid for items in by_age.values() for cid, _ in items]
    cases = {c.id: c for c in db.session.scalars(
        sa.select(DiscrepancyCase).where(DiscrepancyCase.id.in_(case_ids)))} if case_ids else {}
    counts = dict(db.session.execute(
        sa.select(DiscrepancyCase.status, sa.func.count()).group_by(DiscrepancyCase.status)
    ).all())
    a = ReviewAssignment
    open_reviews = db.session.scalar(sa.select(sa.func.count()).where(open_assignments()))
    overdue = db.session.scalar(sa.select(sa.func.count()).where(
        open_assignments(), a.due_at < now))
    period = stats.Period.default()  # the statistics page's default too
    dept = stats.department_rate(db.session, period)
    audit.record("qa.dashboard_viewed")
    db.session.commit()
    return render_template(
        "qa/dashboard.html", by_age=by_age, age_counts=age_counts, cases=cases, counts=counts,
        shown_cases=len(case_ids), open_cases=sum(age_counts.values()),
        status_labels=STATUS_LABELS, open_reviews=open_reviews, overdue=overdue, dept=dept,
        period=period, reviewers=stats.reviewer_stats(db.session, now),
    )


def _period_from(form: StatsFilter) -> stats.Period:
    """Return the chosen period; what is left empty comes from the default period."""
    end = form.end.data or date.today()
    start = form.start.data or stats.Period.default(end).start
    if start > end:
        start, end = end, start
    form.start.data, form.end.data = start, end  # the form shows the period it states
    return stats.Period(start, end)


@bp.route("/stats")
@role_required("qa_manager")
def statistics():
    form = StatsFilter(request.args)
    form.validate()
    period = _period_from(form)
    modality = (form.modality.data or "").strip().upper() or None
    figures = stats.breakdown(db.session, period, modality)
    readers, dept = figures.readers, figures.total.rate
    p = dept.p or 0.0
    positions = {r.reader_id: stats.funnel_position(p, r.n, r.significant) for r in readers}
    funnel = stats.funnel_svg([(r.reader_name, r.n, r.significant) for r in readers], p)
    trend_points = figures.months
    trend = stats.trend_svg([(t.month, t.rate.n, t.rate.k) for t in trend_points], p)
    audit.record("qa.stats_viewed", start=period.start.isoformat(), end=period.end.isoformat(),
                 modality=modality)
    db.session.commit()
    return render_template(
        "qa/stats.html", form=form, period=period, modality=modality, readers=readers,
        dept=dept, positions=positions, funnel=Markup(funnel),  # noqa: S704 (our own SVG)
        trend=Markup(trend), trend_points=trend_points,  # noqa: S704
        modalities=figures.modalities, scores=RADPEER_SCORES,
        references=stats.REFERENCE_RATES, reviewers=stats.reviewer_stats(db.session, utcnow()),
        dept_summary=figures.total,
    )
