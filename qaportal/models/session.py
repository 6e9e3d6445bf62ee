"""Server-side sign-in sessions and the shared rate-limit counters."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qaportal.models.base import Base, utcnow
from qaportal.models.user import User

# Why a session ended (the audit entry and the row say the same).
END_REASONS = ("signed out", "idle timeout", "absolute lifetime", "password changed",
               "signed out elsewhere", "account locked", "account deactivated")


class UserSession(Base):
    """One signed-in browser; the cookie carries only a random token whose hash is stored."""

    __tablename__ = "user_sessions"
    __table_args__ = (sa.Index("ix_user_sessions_user_open", "user_id", "ended_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # SHA-256 of the cookie's token: a copy of this table does not open anyone's session.
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    # The user's session_version at sign-in: a reset or deactivation elsewhere ends it.
    session_version: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(sa.String(40))
    client_ip: Mapped[str] = mapped_column(sa.String(45), default="")
    user_agent: Mapped[str] = mapped_column(sa.String(200), default="")
    # Two-factor enrolment in progress: the secret waits here, never in the cookie.
    totp_pending_secret: Mapped[str | None] = mapped_column(sa.String(64))

    user: Mapped[User] = relationship()


class RateLimitCounter(Base):
    """A fixed-window counter of the `limits` library, shared by every app process."""

    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    count: Mapped[int] = mapped_column(default=0)
    # Seconds since the epoch: compared with time.time() in one SQL statement.
    expires_at: Mapped[float] = mapped_column(sa.Float)
