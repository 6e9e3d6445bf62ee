"""Accounts and the roles they hold."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qaportal.models.base import Base, enum_check, utcnow

if TYPE_CHECKING:
    from qaportal.models.credentials import (
        BoardCertification,
        License,
        Privilege,
        UserSubspecialty,
    )

ROLES = ("radiologist", "reviewer", "qa_manager", "admin")
ROLE_LABELS = {
    "radiologist": "Radiologist",
    "reviewer": "Reviewer",
    "qa_manager": "QA manager",
    "admin": "Administrator",
}


class User(Base):
    """A person who signs in; never deleted, only deactivated, so history keeps its actors."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    full_name: Mapped[str] = mapped_column(sa.String(200))
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    active: Mapped[bool] = mapped_column(default=True)
    must_change_password: Mapped[bool] = mapped_column(default=False)
    # Bumped on password change, reset or deactivation: every other session ends.
    session_version: Mapped[int] = mapped_column(default=1)
    totp_secret: Mapped[str | None] = mapped_column(sa.String(64))
    totp_enabled: Mapped[bool] = mapped_column(default=False)
    totp_last_step: Mapped[int | None] = mapped_column(sa.BigInteger)
    failed_logins: Mapped[int] = mapped_column(default=0)
    failed_window_start: Mapped[datetime | None]
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    # The identifier the RIS or reporting system uses for this radiologist (NPI or a local
    # ID): reads that arrive by HL7 or FHIR are attributed through it.
    reader_id: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    roles: Mapped[list[UserRole]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )
    licenses: Mapped[list[License]] = relationship(
        back_populates="user", cascade="all, delete-orphan", order_by="License.valid_to"
    )
    certifications: Mapped[list[BoardCertification]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )
    privileges: Mapped[list[Privilege]] = relationship(
        back_populates="user", cascade="all, delete-orphan",
        order_by="Privilege.valid_to"
    )
    subspecialties: Mapped[list[UserSubspecialty]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )

    # Flask-Login protocol
    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return f"{self.id}.{self.session_version}"

    @property
    def role_names(self) -> set[str]:
        return {r.role for r in self.roles}

    def has_role(self, *roles: str) -> bool:
        """Return True when the user holds any of the given roles."""
        return bool(self.role_names.intersection(roles))

    def set_roles(self, roles) -> None:
        """Make the user's roles exactly the given ones."""
        wanted = set(roles)
        unknown = wanted - set(ROLES)
        if unknown:
            raise ValueError(f"unknown role(s): {', '.join(sorted(unknown))}")
        self.roles = [r for r in self.roles if r.role in wanted]
        for role in sorted(wanted - self.role_names):
            self.roles.append(UserRole(role=role))

    @property
    def subspecialty_names(self) -> set[str]:
        return {s.subspecialty for s in self.subspecialties}

    def __repr__(self) -> str:
        return f"<User {self.id}>"


class UserRole(Base):
    """One role held by one user."""

    __tablename__ = "user_roles"
    __table_args__ = (enum_check("role", ROLES),)

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), primary_key=True)
    role: Mapped[str] = mapped_column(sa.String(20), primary_key=True)

    user: Mapped[User] = relationship(back_populates="roles")
