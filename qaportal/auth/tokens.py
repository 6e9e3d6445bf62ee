"""Personal API tokens: create, verify, revoke, list; Bearer authentication of API requests.

A token is "qap_" and 43 URL-safe characters (256 random bits). It is shown once; only its
SHA-256 is stored (no slow hash needed: nothing that short to guess), with the first
characters as a prefix its owner recognises in lists.

Bearer authentication runs before every other request hook (the CSRF check and the
sign-in requirement of qaportal.hooks): a request carrying `Authorization: Bearer ...`
is authenticated by its token alone, for this request only. No session row, no cookie,
no mandatory-step redirect; `g.api_token` holds the token (qaportal.dicomweb.guard
checks its scopes). A token opens only API paths (API_PATH_PREFIXES), never a page.
Every use is audited (`api_token.used`), committed before the view runs; for a view marked
`audited_in_transaction` (STOW-RS, which commits its writes once) the entry is written in
the view's own transaction instead (`record_use()`: one commit, not two), and when that
transaction does not commit (a refused or failed request) it is written and committed
after the response is made. A process killed mid-request then leaves no entry, but no
write of the request either. A refused token answers the same 401 whatever the reason
(unknown, expired, revoked, owner deactivated) and counts against a per-client limit, so
guessing is throttled.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import Flask, current_app, g, has_app_context, jsonify, request
from flask.sessions import SecureCookieSessionInterface
from limits import parse_many
from sqlalchemy.orm import Session, joinedload, selectinload

from qaportal import audit
from qaportal.extensions import db
from qaportal.models import ApiToken, User, utcnow
from qaportal.models.api_token import scopes_value
from qaportal.ratelimit import client_address, limiter
from qaportal.validation import plain_text_problem

TOKEN_PREFIX = "qap_"  # noqa: S105 - the format marker of a token, not a secret
SHOWN_CHARS = 12  # "qap_" and 8 characters: enough to tell tokens apart, nothing to guess
LABEL_MAX = 100
MAX_EXPIRY_DAYS = 3650
REVOKE_REASON_MAX = 200
INVALID = 'Bearer error="invalid_token"'
RATE_KEY = "api-token-failure"
DEACTIVATED = "user deactivated"  # the revoke reason when the account is deactivated
PER_SERIES = "_token_use_in_series_audit"
IN_TRANSACTION = "_token_use_in_view_transaction"
_USE_RECORDED = "qaportal_token_use_recorded"  # key in Session.info: in this transaction
# last_used_at is written at most this often: no database write on every frame.
LAST_USED_EVERY = timedelta(seconds=60)


class TokenError(ValueError):
    """A token that cannot be created or changed; the message says why."""


@dataclass
class NewToken:
    """A token just created: the row and the secret, which exists only in this object."""

    token: ApiToken
    secret: str


@dataclass
class Verdict:
    """What verify() found: the token (None: unknown) and why it is refused (None: valid)."""

    token: ApiToken | None
    refused: str | None


def hash_secret(secret: str) -> str:
    """Return the SHA-256 (hex) under which a token's secret is stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def clean_label(label: str | None) -> str:
    """Return the label stripped; TokenError when empty, too long or not plain text."""
    label = (label or "").strip()
    if not label:
        raise TokenError("Give the token a label (what or who uses it).")
    if len(label) > LABEL_MAX:
        raise TokenError(f"The label is longer than {LABEL_MAX} characters.")
    problem = plain_text_problem(label)
    if problem:
        raise TokenError(problem)
    return label


def active_tokens(user: User) -> list[ApiToken]:
    """Return the user's tokens neither revoked nor expired, newest first."""
    now = utcnow()
    return list(db.session.scalars(
        sa.select(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None),
               sa.or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now))
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    ))


def create(user: User, *, label: str, scopes, expires_days: int | None, by: User | None,
           actor_label: str | None = None) -> NewToken:
    """Create a token for user (by: who asked, None on the command line); audit and flush."""
    label = clean_label(label)
    try:
        stored_scopes = scopes_value(scopes)
    except ValueError as exc:
        raise TokenError(str(exc)) from exc
    if expires_days is not None and not 1 <= expires_days <= MAX_EXPIRY_DAYS:
        raise TokenError(f"The expiry must be between 1 and {MAX_EXPIRY_DAYS} days.")
    if not user.active:
        raise TokenError("The account is deactivated: it cannot hold API tokens.")
    limit = int(current_app.config["API_TOKENS_PER_USER"])
    if len(active_tokens(user)) >= limit:
        raise TokenError(f"An account may hold at most {limit} active API tokens: "
                         "revoke one first.")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    token = ApiToken(
        user_id=user.id, label=label, token_prefix=secret[:SHOWN_CHARS],
        token_hash=hash_secret(secret), scopes=stored_scopes, created_at=now,
        created_by_id=by.id if by is not None else None,
        expires_at=now + timedelta(days=expires_days) if expires_days else None,
    )
    db.session.add(token)
    db.session.flush()
    audit.record("api_token.created", token, actor=by, actor_label=actor_label,
                 owner_id=user.id, label=label, prefix=token.token_prefix,
                 scopes=stored_scopes, expires_at=_iso(token.expires_at))
    return NewToken(token, secret)


def verify(secret: str) -> Verdict:
    """Look a secret up: the token and, when it may not be used, why (for the audit)."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return Verdict(None, "unknown token")
    token = db.session.scalar(sa.select(ApiToken).options(joinedload(ApiToken.user))
                              .where(ApiToken.token_hash == hash_secret(secret)))
    if token is None:
        return Verdict(None, "unknown token")
    status = token.status()
    if status != "active":
        return Verdict(token, status)
    if not token.user.active:
        return Verdict(token, DEACTIVATED)
    return Verdict(token, None)


def revoke(token: ApiToken, *, by: User | None, reason: str,
           actor_label: str | None = None) -> bool:
    """Revoke a token (audited); False when it was revoked already."""
    if token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    token.revoked_by_id = by.id if by is not None else None
    token.revoke_reason = reason[:REVOKE_REASON_MAX]
    audit.record("api_token.revoked", token, actor=by, actor_label=actor_label,
                 owner_id=token.user_id, prefix=token.token_prefix, reason=token.revoke_reason)
    return True


def revoke_all(user: User, *, by: User | None, reason: str) -> int:
    """Revoke every unrevoked token of user (deactivation); return how many."""
    rows = db.session.scalars(sa.select(ApiToken).where(ApiToken.user_id == user.id,
                                                        ApiToken.revoked_at.is_(None)))
    return sum(revoke(t, by=by, reason=reason) for t in rows.all())


def user_tokens(user: User) -> list[ApiToken]:
    """Return every token of user, newest first (revoked and expired ones too)."""
    return list(db.session.scalars(
        sa.select(ApiToken).where(ApiToken.user_id == user.id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    ))


def all_tokens() -> list[ApiToken]:
    """Return every token of every user, newest first, with its user loaded."""
    return list(db.session.scalars(
        sa.select(ApiToken).options(selectinload(ApiToken.user))
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    ))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# -- Bearer authentication ----------------------------------------------------------------

def bearer_secret() -> str | None:
    """Return the token of an `Authorization: Bearer` header ("" when empty), else None."""
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


def _is_api_path() -> bool:
    return request.path.startswith(tuple(current_app.config["API_PATH_PREFIXES"]))


def _json(status: int, message: str, **headers):
    response = jsonify(error=message)
    response.status_code = status
    response.headers.update(headers)
    return response


def _failure_limits():
    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return []
    return parse_many(current_app.config["API_TOKEN_FAILURE_RATE_LIMIT"])


def _throttled_for() -> int | None:
    """Seconds this client must wait after too many refused tokens, else None."""
    for item in _failure_limits():
        if not limiter.limiter.test(item, RATE_KEY, client_address()):
            reset = limiter.limiter.get_window_stats(item, RATE_KEY, client_address())[0]
            return max(1, int(reset - utcnow().timestamp()) + 1)
    return None


def _count_failure() -> None:
    for item in _failure_limits():
        limiter.limiter.hit(item, RATE_KEY, client_address())


def authenticate_bearer():
    """Before every request: authenticate a Bearer token, or answer 401/429 as JSON."""
    secret = bearer_secret()
    if secret is None:
        return None
    if not _is_api_path():
        # A token is for machines: it never opens a page, whatever it is.
        return _json(401, "API tokens are accepted only by the API (" +
                     ", ".join(current_app.config["API_PATH_PREFIXES"]) + ")",
                     **{"WWW-Authenticate": 'Bearer error="invalid_request"'})
    wait = _throttled_for()
    if wait is not None:
        current_app.logger.warning("API token refused: too many refused tokens from %s",
                                   client_address())
        return _json(429, "too many requests", **{"Retry-After": str(wait)})
    verdict = verify(secret)
    if verdict.refused is not None:
        _count_failure()
        if verdict.token is None:
            # No audit entry per guess (the limit bounds them); never the secret in a log.
            current_app.logger.warning("API token refused: unknown token, from %s",
                                       client_address())
        else:
            audit.record("api_token.refused", verdict.token, actor=verdict.token.user,
                         reason=verdict.refused, method=request.method,
                         endpoint=request.endpoint)
            db.session.commit()
        return _json(401, "invalid or expired API token", **{"WWW-Authenticate": INVALID})
    token = verdict.token
    user = token.user
    g.api_token = token
    g._login_user = user  # Flask-Login's current_user, for this request only
    view = current_app.view_functions.get(request.endpoint)
    if getattr(view, IN_TRANSACTION, False):
        # One commit fewer: the view's own transaction carries the entry (record_use),
        # and what did not commit it is audited after the response (audit_pending_use).
        g.token_use_pending = True
        return None
    written = False
    if getattr(view, PER_SERIES, False):
        g.token_use_in_series_audit = True  # audit_series_read names the token
    else:
        _record_used(token)
        written = True
    written = _touch(token) or written
    if written:
        db.session.commit()  # before the view: its own transaction starts clean
    return None


def _record_used(token: ApiToken, **details) -> None:
    # The endpoint's name, never the path: paths of the API hold UIDs.
    audit.record("api_token.used", token, actor=token.user, method=request.method,
                 endpoint=request.endpoint, **details)


def _touch(token: ApiToken) -> bool:
    """Set last_used_at unless it was written within LAST_USED_EVERY; True if it changed."""
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_EVERY:
        token.last_used_at = now
        return True
    return False


def audited_in_transaction(view: Callable) -> Callable:
    """Mark a view that writes and commits once: a token's use is recorded in that
    transaction (the view calls `record_use()` before its commit) instead of being
    committed on its own before the view runs."""
    setattr(view, IN_TRANSACTION, True)
    return view


def record_use() -> None:
    """Add this request's token use (entry and last_used_at) to the current transaction.

    For views marked `audited_in_transaction`, before their commit; nothing for a request
    without a token, or when this transaction holds the entry already. A rollback (a retry
    of the transaction) drops it, so the next attempt adds it again.
    """
    if not g.get("token_use_pending") or db.session.info.get(_USE_RECORDED):
        return
    token = g.api_token
    _record_used(token)
    _touch(token)
    db.session.info[_USE_RECORDED] = True


@sa.event.listens_for(Session, "after_commit")
def _use_committed(session: Session) -> None:
    if session.info.pop(_USE_RECORDED, None) and has_app_context():
        g.pop("token_use_pending", None)


@sa.event.listens_for(Session, "after_rollback")
def _use_rolled_back(session: Session) -> None:
    session.info.pop(_USE_RECORDED, None)


def audit_pending_use(response):
    """After a view marked `audited_in_transaction` that did not commit its token use
    (refused, failed, or no write): drop what it left uncommitted, record the use, commit."""
    if g.pop("token_use_pending", False):
        token = g.get("api_token")
        if token is not None:
            db.session.rollback()
            _record_used(token)
            _touch(token)
            db.session.commit()
    return response


def audited_per_series(view: Callable) -> Callable:
    """Mark a view whose reads are audited once per series (frames, rendered images, bulk
    data: `audit_series_read`, which names the token), like the viewer's frames: a token's
    use there adds no `api_token.used` entry of its own unless the request fails."""
    setattr(view, PER_SERIES, True)
    return view


def audit_failed_series_read(response):
    """After a per-series read by a token: a refused or failed one is audited here (a
    successful one is covered by its series' entry)."""
    if g.pop("token_use_in_series_audit", False) and response.status_code >= 400:
        token = g.get("api_token")
        if token is not None:
            db.session.rollback()
            audit.record("api_token.used", token, actor=token.user, method=request.method,
                         endpoint=request.endpoint, status=response.status_code)
            db.session.commit()
    return response


class TokenAwareSessionInterface(SecureCookieSessionInterface):
    """The signed-cookie session, never saved on a request authenticated by a token.

    Flask re-sends a permanent session's cookie on every request; a client sending both a
    cookie and a token would get it back refreshed. A token's request sets no cookie.
    """

    def save_session(self, app, session, response) -> None:
        if g.get("api_token") is not None:
            return
        super().save_session(app, session, response)


def init_app(app: Flask) -> None:
    """Install Bearer authentication as the app's first before-request hook."""
    # First: before the CSRF check (a token is no cookie, no forgery) and before
    # require_login (which would touch a session and send mandatory-step redirects).
    app.before_request_funcs.setdefault(None, []).insert(0, authenticate_bearer)
    app.after_request(audit_failed_series_read)
    app.after_request(audit_pending_use)
    app.session_interface = TokenAwareSessionInterface()
