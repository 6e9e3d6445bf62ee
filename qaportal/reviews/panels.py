"""Home-page panels: the reviewer's open reviews and cases, the reader's feedback."""

from __future__ import annotations

import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.home.panels import panel
from qaportal.models import (
    CommitteeMember,
    DiscrepancyCase,
    ReviewAssignment,
    User,
    utcnow,
)


@panel("Peer reviews", "reviews/panel_reviewer.html", ("reviewer",), order=20)
def _reviewer(user: User) -> dict:
    a = ReviewAssignment  # counted in the database: a reviewer may hold thousands
    open_, overdue = db.session.execute(
        sa.select(sa.func.count(), sa.func.count().filter(a.due_at < utcnow()))
        .where(a.reviewer_id == user.id, a.status == "assigned")).one()
    committee = db.session.scalar(
        sa.select(sa.func.count()).select_from(DiscrepancyCase).join(CommitteeMember)
        .where(CommitteeMember.user_id == user.id, DiscrepancyCase.status == "committee")) or 0
    return {"open": open_, "overdue": overdue,
            "committee": committee}


def feedback_waiting_stmt(reader_id: int) -> sa.Select:
    """Count the decided cases about the reader's reads that wait for their answer."""
    return (sa.select(sa.func.count()).select_from(DiscrepancyCase)
            .where(DiscrepancyCase.reader_id == reader_id, DiscrepancyCase.status == "decided"))


@panel("Peer-review feedback", "reviews/panel_feedback.html", ("radiologist",), order=30)
def _feedback(user: User) -> dict:
    return {"waiting": db.session.scalar(feedback_waiting_stmt(user.id)) or 0}
