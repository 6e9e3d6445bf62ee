"""Peer learning: anonymised teaching cases and the conferences that discuss them."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qaportal.models.base import Base, enum_check, utcnow
from qaportal.models.review import CATEGORIES

if TYPE_CHECKING:
    from qaportal.models.study import Study
    from qaportal.models.user import User


class TeachingCase(Base):
    """A case turned into anonymous teaching material: no names, de-identified images."""

    __tablename__ = "teaching_cases"
    __table_args__ = (enum_check("category", CATEGORIES),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("studies.id"), index=True)
    review_id: Mapped[int | None] = mapped_column(sa.ForeignKey("reviews.id"), unique=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    teaching_point: Mapped[str] = mapped_column(sa.Text)
    category: Mapped[str | None] = mapped_column(sa.String(20))
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    study: Mapped[Study] = relationship()


class Conference(Base):
    """A peer-learning conference: its cases, who attended, what was learnt and changed."""

    __tablename__ = "conferences"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    held_on: Mapped[date]
    learning_points: Mapped[str] = mapped_column(sa.Text, default="")
    improvement_actions: Mapped[str] = mapped_column(sa.Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    cases: Mapped[list[ConferenceCase]] = relationship(
        cascade="all, delete-orphan", order_by="ConferenceCase.position"
    )
    attendees: Mapped[list[ConferenceAttendee]] = relationship(cascade="all, delete-orphan")


class ConferenceCase(Base):
    """A teaching case on a conference's agenda."""

    __tablename__ = "conference_cases"

    conference_id: Mapped[int] = mapped_column(sa.ForeignKey("conferences.id"),
                                               primary_key=True)
    teaching_case_id: Mapped[int] = mapped_column(sa.ForeignKey("teaching_cases.id"),
                                                  primary_key=True)
    position: Mapped[int] = mapped_column(default=0)

    teaching_case: Mapped[TeachingCase] = relationship()


class ConferenceAttendee(Base):
    """A person invited to a conference, and whether they attended."""

    __tablename__ = "conference_attendees"

    conference_id: Mapped[int] = mapped_column(sa.ForeignKey("conferences.id"),
                                               primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), primary_key=True)
    attended: Mapped[bool] = mapped_column(default=False)

    user: Mapped[User] = relationship()
