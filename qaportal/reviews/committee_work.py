"""Committee duty made visible: a nav entry and a home card for anyone on a committee."""

from __future__ import annotations

import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.home.panels import panel
from qaportal.models import CommitteeMember, CommitteeVote, DiscrepancyCase, User


def has_committee_work(user: User) -> bool:
    """Return True when the user sits (or sat) on any discrepancy committee."""
    return db.session.scalar(sa.select(sa.exists().where(
        CommitteeMember.user_id == user.id))) or False


def committee_counts(user: User) -> dict[str, int]:
    """Return the user's cases open for scoring, and those still waiting for their score."""
    open_ids = list(db.session.scalars(
        sa.select(DiscrepancyCase.id).join(CommitteeMember)
        .where(CommitteeMember.user_id == user.id, DiscrepancyCase.status == "committee")))
    scored = db.session.scalar(
        sa.select(sa.func.count()).select_from(CommitteeVote)
        .join(DiscrepancyCase, DiscrepancyCase.id == CommitteeVote.case_id)
        .where(CommitteeVote.user_id == user.id, CommitteeVote.case_id.in_(open_ids),
               CommitteeVote.round == DiscrepancyCase.round)) if open_ids else 0
    return {"open": len(open_ids), "waiting": len(open_ids) - (scored or 0)}


@panel("Committee cases", "reviews/panel_committee.html", ("radiologist", "reviewer"),
       order=25)
def _committee(user: User) -> dict | None:
    # Reviewers see their committee cases in the "Peer reviews" panel already.
    if user.has_role("reviewer"):
        return None
    counts = committee_counts(user)
    return counts if counts["open"] else None
