"""Home-page panel for QA managers: open discrepancy cases and overdue reviews."""

from __future__ import annotations

import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.home.panels import panel
from qaportal.models import ReviewAssignment, User, utcnow
from qaportal.models.reviewer_workload import open_assignments
from qaportal.qa import stats


@panel("Peer-review quality", "qa/panel_qa.html", ("qa_manager",), order=20)
def _qa(user: User) -> dict:
    now = utcnow()
    by_age = stats.open_case_age_counts(db.session, now)
    overdue = db.session.scalar(sa.select(sa.func.count()).where(
        open_assignments(), ReviewAssignment.due_at < now)) or 0
    return {"by_age": by_age, "overdue": overdue}
