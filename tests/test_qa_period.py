"""One default statistics period, used and stated by the QA dashboard and statistics page."""

from __future__ import annotations

import re
from datetime import date, timedelta

from qaportal.extensions import db
from qaportal.models import utcnow
from qaportal.qa import stats
from tests.factories import make_review, make_study, make_user


def test_the_default_period_is_the_twelve_months_ending_today():
    p = stats.Period.default(date(2026, 12, 3))
    assert (p.start, p.end) == (date(2025, 12, 4), date(2026, 12, 3))
    assert p.label == "4 Dec 2025 – 3 Dec 2026"
    assert stats.Period.default(date(2028, 2, 29)).start == date(2027, 3, 1)


def _rate(page: str) -> str:
    return re.search(r"\((\d+/\d+);", page).group(1)


def test_dashboard_and_statistics_state_and_count_the_same_period(client, login_as):
    login_as("qa_manager")
    reader, reviewer = make_user(), make_user(roles=("reviewer", "radiologist"))
    # A read 364 days old lies in the 12 months ending today: counted on both pages (the
    # dashboard used to start at the first of a month 11 months ago and left it out).
    old = make_study(reader, finalized_at=utcnow() - timedelta(days=364))
    make_review(old.read, reviewer, "1")
    recent = make_study(reader, finalized_at=utcnow() - timedelta(days=3))
    make_review(recent.read, reviewer, "3b")
    db.session.commit()
    label = stats.Period.default().label
    dashboard = client.get("/qa/").get_data(as_text=True)
    statistics = client.get("/qa/stats").get_data(as_text=True)
    assert f'id="period">{label}<' in dashboard
    assert f'id="period">{label}<' in statistics
    department = statistics.split("<th>Department</th>", 1)[1]
    assert _rate(dashboard) == _rate(department) == "1/2"
    # The statistics form shows the dates it states.
    start = stats.Period.default().start.isoformat()
    assert f'value="{start}"' in statistics
