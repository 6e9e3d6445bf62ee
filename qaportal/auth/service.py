"""Sign-in rules: lockout, password checks, TOTP; they audit and flush, never commit."""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from datetime import timedelta

import pyotp
import sqlalchemy as sa
from flask import current_app

from qaportal import audit
from qaportal.extensions import db
from qaportal.models import User, utcnow
from qaportal.passwords import hash_password, needs_rehash, verify_password

TOTP_ISSUER = "qaportal"
# One answer for a wrong password, an unknown e-mail, a locked or a deactivated account:
# the sign-in page must not tell which accounts exist or are locked.
FAILED_MESSAGE = (
    "Invalid e-mail or password. After repeated failed attempts an account is locked "
    "for a while; an administrator can unlock it."
)


@dataclass
class LoginOutcome:
    """What happened to a sign-in attempt."""

    user: User | None
    ok: bool
    message: str = ""


def find_user(email: str) -> User | None:
    """Return the account for an e-mail address, compared case-insensitively."""
    return db.session.scalar(sa.select(User).where(User.email == email.strip().lower()))


def attempt_login(email: str, password: str) -> LoginOutcome:
    """Check a password sign-in, counting failures and locking the account when due."""
    generic = FAILED_MESSAGE
    user = find_user(email)
    if user is None:
        verify_password(None, password)  # same work as for a real account
        audit.record("auth.login_failed", actor_label=email.strip().lower()[:254],
                     reason="unknown account")
        return LoginOutcome(None, False, generic)
    if is_locked(user):
        verify_password(user.password_hash, password)  # same work and answer as a wrong one
        audit.record("auth.login_refused", user, actor=user, reason="account locked")
        return LoginOutcome(user, False, generic)
    if not verify_password(user.password_hash, password):
        return register_failure(user, "wrong password")
    if not user.active:
        audit.record("auth.login_refused", user, actor=user, reason="account deactivated")
        return LoginOutcome(user, False, generic)
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return LoginOutcome(user, True)


def register_failure(user: User, reason: str) -> LoginOutcome:
    """Count a failed sign-in (password or code) and lock the account when due."""
    cfg = current_app.config
    now = utcnow()
    window = timedelta(minutes=cfg["LOCKOUT_WINDOW_MINUTES"])
    lock_over = user.locked_until is not None and user.locked_until <= now
    if lock_over or user.failed_window_start is None or now - user.failed_window_start > window:
        user.failed_window_start = now
        user.failed_logins = 0
        user.locked_until = None
    user.failed_logins += 1
    audit.record("auth.login_failed", user, actor=user, reason=reason,
                 failures=user.failed_logins)
    if user.failed_logins >= cfg["LOCKOUT_THRESHOLD"]:
        user.locked_until = now + timedelta(minutes=cfg["LOCKOUT_MINUTES"])
        audit.record(
            "auth.lockout", user, actor=user,
            reason=f"{user.failed_logins} failed sign-ins within "
                   f"{cfg['LOCKOUT_WINDOW_MINUTES']} minutes",
            locked_minutes=cfg["LOCKOUT_MINUTES"],
        )
    return LoginOutcome(user, False, FAILED_MESSAGE)


def is_locked(user: User) -> bool:
    """Return True while a lockout is in force."""
    return user.locked_until is not None and user.locked_until > utcnow()


def locked_message(user: User) -> str:
    """Tell a signed-in user (signing, for instance) how long their own account stays locked."""
    left = (user.locked_until - utcnow()).total_seconds() if user.locked_until else 0
    minutes = max(1, int(left // 60) + 1)
    return (
        "This account is locked after repeated failed sign-ins. "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}, "
        "or ask an administrator to unlock it."
    )


def complete_login(user: User, method: str) -> None:
    """Record a successful sign-in and clear the failure count."""
    user.failed_logins = 0
    user.failed_window_start = None
    user.locked_until = None
    user.last_login_at = utcnow()
    audit.record("auth.login", user, actor=user, method=method)


def change_password(user: User, new_password: str, *, by: User | None = None) -> None:
    """Set a new password and end the user's other sessions."""
    user.password_hash = hash_password(new_password)
    user.session_version += 1
    user.must_change_password = by is not None and by.id != user.id
    action = "user.password_changed" if by is None or by.id == user.id else "user.password_reset"
    audit.record(action, user, actor=by or user)


def new_totp_secret() -> str:
    """Return a fresh base32 secret for an authenticator app."""
    return pyotp.random_base32()


def provisioning_uri(user: User, secret: str) -> str:
    """Return the otpauth:// URI the QR code encodes."""
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=TOTP_ISSUER)


def check_totp(user: User, code: str, secret: str | None = None) -> bool:
    """Accept a current code once (±30 s drift); a code already used is refused."""
    secret = secret or user.totp_secret
    if not secret:
        return False
    code = code.strip().replace(" ", "")
    totp = pyotp.TOTP(secret)
    now_step = int(time.time()) // totp.interval
    for step in (now_step - 1, now_step, now_step + 1):
        if user.totp_last_step is not None and step <= user.totp_last_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            user.totp_last_step = step
            return True
    return False


def enable_totp(user: User, secret: str) -> None:
    """Turn on two-factor sign-in with a confirmed secret."""
    user.totp_secret = secret
    user.totp_enabled = True
    audit.record("auth.totp_enabled", user, actor=user)


def disable_totp(user: User) -> None:
    """Turn off two-factor sign-in."""
    user.totp_secret = None
    user.totp_enabled = False
    user.totp_last_step = None
    audit.record("auth.totp_disabled", user, actor=user)
