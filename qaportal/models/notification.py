"""In-app notifications (the bell), also sent by e-mail when configured."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from qaportal.models.base import Base, utcnow


class Notification(Base):
    """A message to one user; it names no patient, only links to the object."""

    __tablename__ = "notifications"
    __table_args__ = (sa.Index("ix_notifications_user_unread", "user_id", "read_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(sa.String(40))
    message: Mapped[str] = mapped_column(sa.String(300))
    link: Mapped[str] = mapped_column(sa.String(300), default="")
    # Idempotency for scheduled notices (e.g. "deadline approaching" for request 12).
    dedupe_key: Mapped[str | None] = mapped_column(sa.String(120), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]


# Every page a user opens marks read their unread notifications linking to it (qaportal/
# hooks.py): found here by link, not by reading each unread one of the user (0027).
sa.Index("ix_notifications_unread_link", Notification.user_id, Notification.link,
         postgresql_where=sa.text("read_at IS NULL"), sqlite_where=sa.text("read_at IS NULL"))


# The notification list, newest first (0020).
sa.Index("ix_notifications_user_created", Notification.user_id, Notification.created_at.desc(),
         Notification.id.desc())
