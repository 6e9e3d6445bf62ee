"""A radiologist's licences, board certifications, hospital privileges and subspecialties."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qaportal.models.base import Base, enum_check

if TYPE_CHECKING:
    from qaportal.models.user import User

SUBSPECIALTIES = (
    "neuro", "msk", "body", "chest", "breast", "paediatric",
    "cardiac", "interventional", "nuclear", "general",
)
SUBSPECIALTY_LABELS = {
    "neuro": "Neuroradiology", "msk": "Musculoskeletal", "body": "Body",
    "chest": "Chest", "breast": "Breast", "paediatric": "Paediatric",
    "cardiac": "Cardiac", "interventional": "Interventional",
    "nuclear": "Nuclear medicine", "general": "General",
}


def validity_status(valid_to: date | None, today: date, warn_days: int) -> str:
    """Return 'expired', 'expiring' or 'valid' for an end date."""
    if valid_to is None:
        return "valid"
    if valid_to < today:
        return "expired"
    if valid_to <= today + timedelta(days=warn_days):
        return "expiring"
    return "valid"


class License(Base):
    """A licence to practise in one jurisdiction (a US state code, a country code)."""

    __tablename__ = "licenses"
    __table_args__ = (sa.CheckConstraint("valid_to >= valid_from", name="period_ordered"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    jurisdiction: Mapped[str] = mapped_column(sa.String(10))
    number: Mapped[str] = mapped_column(sa.String(64))
    valid_from: Mapped[date]
    valid_to: Mapped[date]

    user: Mapped[User] = relationship(back_populates="licenses")

    def is_active_on(self, day: date) -> bool:
        """Return True when the licence covers the given day."""
        return self.valid_from <= day <= self.valid_to


class BoardCertification(Base):
    """A board certification, e.g. ABR Diagnostic Radiology."""

    __tablename__ = "board_certifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    board: Mapped[str] = mapped_column(sa.String(120))
    specialty: Mapped[str] = mapped_column(sa.String(120))
    certified_on: Mapped[date | None]
    expires_on: Mapped[date | None]

    user: Mapped[User] = relationship(back_populates="certifications")


class Privilege(Base):
    """Clinical privileges granted by a facility, e.g. "Diagnostic CT interpretation"."""

    __tablename__ = "privileges"
    __table_args__ = (sa.CheckConstraint("valid_to >= granted_on", name="period_ordered"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    facility: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.String(200))
    granted_on: Mapped[date]
    valid_to: Mapped[date]
    notes: Mapped[str] = mapped_column(sa.String(500), default="")

    user: Mapped[User] = relationship(back_populates="privileges")


class UserSubspecialty(Base):
    """A subspecialty a radiologist reads, used to route pool requests and reviews."""

    __tablename__ = "user_subspecialties"
    __table_args__ = (enum_check("subspecialty", SUBSPECIALTIES),)

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), primary_key=True)
    subspecialty: Mapped[str] = mapped_column(sa.String(20), primary_key=True)

    user: Mapped[User] = relationship(back_populates="subspecialties")
