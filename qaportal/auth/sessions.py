"""Server-side sessions: the cookie holds a random token, the database decides if it is valid.

Sign-out, a password change, a lockout, deactivation, the idle timeout and the absolute
lifetime end the row; a replayed copy of the cookie then opens nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app, g, request
from sqlalchemy.orm import joinedload

from qaportal import audit
from qaportal.extensions import db
from qaportal.models import User, utcnow
from qaportal.models.session import UserSession

# last_seen_at is written at most this often (seconds): no database write on every request.
TOUCH_EVERY = 60


@dataclass
class Expired:
    """A session found past its idle timeout or absolute lifetime while loading the user."""

    row: UserSession
    reason: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(user: User) -> str:
    """Open a session for the user and return the token the cookie will carry."""
    token = secrets.token_urlsafe(32)
    row = UserSession(
        token_hash=_hash(token), user_id=user.id, session_version=user.session_version,
        client_ip=(request.remote_addr or "")[:45],
        user_agent=(request.user_agent.string or "")[:200],
    )
    db.session.add(row)
    db.session.flush()
    return token


def end(row: UserSession, reason: str) -> None:
    """End one session (idempotent) and forget a pending enrolment secret."""
    if row.ended_at is None:
        row.ended_at = utcnow()
        row.end_reason = reason
    row.totp_pending_secret = None


def end_all(user: User, reason: str, *, keep: UserSession | None = None) -> int:
    """End every open session of the user except `keep`; return how many ended."""
    stmt = (sa.update(UserSession)
            .where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
            .values(ended_at=utcnow(), end_reason=reason, totp_pending_secret=None))
    if keep is not None:
        stmt = stmt.where(UserSession.id != keep.id)
    return db.session.execute(stmt, execution_options={"synchronize_session": False}).rowcount


def _expiry_reason(row: UserSession) -> str | None:
    cfg = current_app.config
    now = utcnow()
    if now - row.created_at > timedelta(hours=cfg["SESSION_ABSOLUTE_HOURS"]):
        return "absolute lifetime"
    if now - row.last_seen_at > timedelta(minutes=cfg["IDLE_TIMEOUT_MINUTES"]):
        return "idle timeout"
    return None


def load(token: str) -> User | None:
    """Return the user of a valid session token, else None (Flask-Login's user loader)."""
    if not token or "." in token or len(token) > 100:
        return None  # pre-0009 cookies ("<id>.<version>") and junk open nothing
    row = db.session.scalars(_session_stmt(_hash(token))).unique().one_or_none()
    if row is None or row.ended_at is not None:
        return None
    user = row.user
    if not user.active or user.session_version != row.session_version:
        return None
    reason = _expiry_reason(row)
    if reason:
        g.expired_session = Expired(row, reason)  # require_login ends it, audits, explains
        return None
    g.user_session = row
    return user


def _session_stmt(token_hash: str) -> sa.Select:
    """The session row with its user and the user's roles and subspecialties: one statement
    at the start of every request (four with each loaded on its own)."""
    user = joinedload(UserSession.user, innerjoin=True)
    return (sa.select(UserSession).where(UserSession.token_hash == token_hash)
            .options(user.joinedload(User.roles), user.joinedload(User.subspecialties)))


def current() -> UserSession | None:
    """Return the session row of this request's signed-in user."""
    from flask_login import current_user

    if not current_user.is_authenticated:
        return None
    return g.get("user_session")


def expire_if_found() -> Expired | None:
    """End a session found expired by the loader, audited; the caller commits."""
    expired = g.pop("expired_session", None)
    if expired is None:
        return None
    end(expired.row, expired.reason)
    audit.record("auth.session_expired", expired.row.user, actor=expired.row.user,
                 reason=expired.reason)
    return expired


def touch(row: UserSession) -> bool:
    """Refresh last_seen_at when it is older than TOUCH_EVERY; return True when written."""
    now = utcnow()
    if (now - row.last_seen_at).total_seconds() < TOUCH_EVERY:
        return False
    row.last_seen_at = now
    return True
