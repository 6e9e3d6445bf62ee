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
    now = utcnow()
    open_ = db.session.scalars(sa.select(ReviewAssignment).where(
        ReviewAssignment.reviewer_id == user.id, ReviewAssignment.status == "assigned")).all()
    committee = db.session.scalar(
        sa.select(sa.func.count()).select_from(DiscrepancyCase).join(CommitteeMember)
        .where(CommitteeMember.user_id == user.id, DiscrepancyCase.status == "committee")) or 0
    return {"open": len(open_), "overdue": sum(a.is_overdue(now) for a in open_),
            "committee": committee}


def feedback_waiting_stmt(reader_id: int) -> sa.Select:
    """Count the decided cases about the reader's reads that wait for their answer."""
    return (sa.select(sa.func.count()).select_from(DiscrepancyCase)
            .where(DiscrepancyCase.reader_id == reader_id, DiscrepancyCase.status == "decided"))


@panel("Peer-review feedback", "reviews/panel_feedback.html", ("radiologist",), order=30)
def _feedback(user: User) -> dict:
    return {"waiting": db.session.scalar(feedback_waiting_stmt(user.id)) or 0}
