"""Personal API tokens: long-lived credentials for machines (DICOMweb clients, scripts)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qaportal.models.base import Base, enum_check, utcnow
from qaportal.models.user import User

SCOPES = ("read", "write")
# The stored forms of a non-empty set of scopes, in a fixed order.
SCOPE_VALUES = ("read", "write", "read write")


def scopes_value(scopes) -> str:
    """Return the stored form of a set of scopes; ValueError when empty or unknown."""
    wanted = set(scopes)
    unknown = wanted - set(SCOPES)
    if unknown:
        raise ValueError(f"unknown scope(s): {', '.join(sorted(unknown))}; "
                         f"the scopes are {', '.join(SCOPES)}")
    if not wanted:
        raise ValueError("a token needs at least one scope (read, write)")
    return " ".join(s for s in SCOPES if s in wanted)


class ApiToken(Base):
    """One personal API token; only the SHA-256 of its secret is stored.

    The secret is 256 random bits, so a plain SHA-256 is enough: nothing to brute-force
    from a copy of this table. The prefix (the first characters of the secret) lets its
    owner tell tokens apart in lists.
    """

    __tablename__ = "api_tokens"
    __table_args__ = (
        enum_check("scopes", SCOPE_VALUES),
        sa.Index("ix_api_tokens_user_revoked", "user_id", "revoked_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    label: Mapped[str] = mapped_column(sa.String(100))
    token_prefix: Mapped[str] = mapped_column(sa.String(16))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    scopes: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # None when created on the command line (the audit entry names the operator).
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    revoke_reason: Mapped[str | None] = mapped_column(sa.String(200))

    user: Mapped[User] = relationship(foreign_keys=[user_id])

    @property
    def scope_set(self) -> frozenset[str]:
        """The scopes as a set: {"read"}, {"write"} or both."""
        return frozenset(self.scopes.split())

    def status(self, now: datetime | None = None) -> str:
        """Return "revoked", "expired" or "active"."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or utcnow()):
            return "expired"
        return "active"

    def __repr__(self) -> str:
        return f"<ApiToken {self.id} {self.token_prefix}…>"
