"""Discrepancy cases: committee adjudication of significant reviews, feedback to the reader."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qaportal.models.base import Base, enum_check, utcnow
from qaportal.models.review import RADPEER_SCORES

if TYPE_CHECKING:
    from qaportal.models.review import Review
    from qaportal.models.user import User

# open: waiting for a committee; committee: members scoring (again after a dispute);
# decided: final score recorded, feedback with the reader; closed: acknowledged.
CASE_STATUSES = ("open", "committee", "decided", "closed")
STATUS_LABELS = {
    "open": "Awaiting committee", "committee": "Committee scoring",
    "decided": "Feedback with reader", "closed": "Closed",
}
OUTCOMES = ("upheld", "downgraded", "overturned")
CASE_EVENTS = ("opened", "committee_assigned", "voted", "decided", "acknowledged", "disputed",
               "closed", "teaching")


class DiscrepancyCase(Base):
    """Adjudication of one review scored as a significant discrepancy."""

    __tablename__ = "discrepancy_cases"
    __table_args__ = (
        enum_check("status", CASE_STATUSES),
        enum_check("final_score", RADPEER_SCORES),
        enum_check("outcome", OUTCOMES),
        sa.CheckConstraint(
            "status NOT IN ('decided', 'closed') OR (final_score IS NOT NULL "
            "AND outcome IS NOT NULL AND rationale <> '')", name="decision_complete"),
        sa.CheckConstraint("round >= 1", name="round_positive"),
        # The reader's feedback (home page count, feedback list): their cases by state.
        sa.Index("ix_discrepancy_cases_reader_status", "reader_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    review_id: Mapped[int] = mapped_column(sa.ForeignKey("reviews.id"), unique=True)
    # The reader of the reviewed read, kept here so that a reader's cases are found without
    # joining every case to its read; set on insert and follows a corrected read's reader
    # (qaportal/models/case_reader.py).
    reader_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(sa.String(12), default="open", index=True)
    round: Mapped[int] = mapped_column(default=1)  # a dispute starts another round
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_at: Mapped[datetime] = mapped_column(default=utcnow)
    final_score: Mapped[str | None] = mapped_column(sa.String(4))
    outcome: Mapped[str | None] = mapped_column(sa.String(12))
    rationale: Mapped[str] = mapped_column(sa.Text, default="")
    decided_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    decided_at: Mapped[datetime | None]
    reader_response: Mapped[str] = mapped_column(sa.Text, default="")
    acknowledged_at: Mapped[datetime | None]
    disputed_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]

    review: Mapped[Review] = relationship(back_populates="case")
    members: Mapped[list[CommitteeMember]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="CommitteeMember.id"
    )
    votes: Mapped[list[CommitteeVote]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="CommitteeVote.id"
    )
    events: Mapped[list[CaseEvent]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="CaseEvent.id"
    )

    def round_votes(self) -> list[CommitteeVote]:
        """Return the votes of the current round."""
        return [v for v in self.votes if v.round == self.round]

    def all_voted(self) -> bool:
        """Return True when every member has scored in the current round."""
        voted = {v.user_id for v in self.round_votes()}
        return bool(self.members) and all(m.user_id in voted for m in self.members)


# The QA case list's orders (oldest opened first): every case, the cases not closed
# (partial), one state; the reader's feedback list, newest decision first (0020).
_NOT_CLOSED = "status <> 'closed'"
sa.Index("ix_discrepancy_cases_opened", DiscrepancyCase.opened_at, DiscrepancyCase.id)
sa.Index("ix_discrepancy_cases_active_opened", DiscrepancyCase.opened_at, DiscrepancyCase.id,
         postgresql_where=sa.text(_NOT_CLOSED), sqlite_where=sa.text(_NOT_CLOSED))
sa.Index("ix_discrepancy_cases_status_opened", DiscrepancyCase.status, DiscrepancyCase.opened_at,
         DiscrepancyCase.id)
sa.Index("ix_discrepancy_cases_reader_decided", DiscrepancyCase.reader_id,
         DiscrepancyCase.decided_at.desc(), DiscrepancyCase.id.desc())


class CommitteeMember(Base):
    """A colleague who adjudicates a case; never its reader or reviewer."""

    __tablename__ = "committee_members"
    __table_args__ = (sa.UniqueConstraint("case_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("discrepancy_cases.id"), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))  # indexed below
    added_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)

    case: Mapped[DiscrepancyCase] = relationship(back_populates="members")
    user: Mapped[User] = relationship(foreign_keys=[user_id])


# A member's committee list, newest seat first; also every lookup by member (0020).
sa.Index("ix_committee_members_user_seat", CommitteeMember.user_id, CommitteeMember.id)


class CommitteeVote(Base):
    """One member's independent score in one round."""

    __tablename__ = "committee_votes"
    __table_args__ = (
        sa.UniqueConstraint("case_id", "user_id", "round"),
        enum_check("score", RADPEER_SCORES),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("discrepancy_cases.id"), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    round: Mapped[int] = mapped_column(default=1)
    score: Mapped[str] = mapped_column(sa.String(4))
    comment: Mapped[str] = mapped_column(sa.Text, default="")
    voted_at: Mapped[datetime] = mapped_column(default=utcnow)

    case: Mapped[DiscrepancyCase] = relationship(back_populates="votes")
    user: Mapped[User] = relationship()


class CaseEvent(Base):
    """A timestamped step in a case's life (state changes, votes, responses)."""

    __tablename__ = "discrepancy_events"
    __table_args__ = (enum_check("event", CASE_EVENTS),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("discrepancy_cases.id"), index=True)
    event: Mapped[str] = mapped_column(sa.String(20))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    note: Mapped[str] = mapped_column(sa.Text, default="")

    case: Mapped[DiscrepancyCase] = relationship(back_populates="events")
