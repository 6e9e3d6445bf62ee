"""Per-client rate limiting of sign-in, with counters every app process shares.

Flask-Limiter decides; its counters live in the `limits` storage named by
RATELIMIT_STORAGE_URI. The default, `qaportal-db://`, is the portal's own database
(SQLite or PostgreSQL), so several gunicorn workers count together; a Redis or Memcached
URI understood by `limits` works as well.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from flask import Flask, current_app, jsonify, render_template, request
from flask_limiter import Limiter
from limits.storage import Storage
from werkzeug.exceptions import TooManyRequests

from qaportal import audit
from qaportal.extensions import db
from qaportal.models.session import RateLimitCounter

DB_STORAGE_URI = "qaportal-db://"


def client_address() -> str:
    """Return the client's address (the proxy's X-Forwarded-For hop when PROXY_FIX is on)."""
    return request.remote_addr or "unknown"


limiter = Limiter(key_func=client_address, default_limits=[])


def sign_in_limit() -> str:
    """Return the configured sign-in limit, e.g. "10 per minute;100 per hour"."""
    return current_app.config["SIGN_IN_RATE_LIMIT"]


class DatabaseStorage(Storage):
    """A `limits` fixed-window storage in the table rate_limit_counters.

    Each increment is one atomic INSERT ... ON CONFLICT DO UPDATE in a transaction of its
    own (not the request's), so the count survives a rolled-back request and two processes
    never lose each other's hits.
    """

    STORAGE_SCHEME = ["qaportal-db"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception]:
        return sa.exc.SQLAlchemyError

    def _insert(self):
        dialect = db.engine.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:  # pragma: no cover - the portal runs on SQLite or PostgreSQL
            raise RuntimeError(f"unsupported database: {dialect}")
        return insert(RateLimitCounter)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        table = RateLimitCounter.__table__
        stmt = self._insert().values(key=key, count=amount, expires_at=now + expiry)
        lapsed = table.c.expires_at <= now
        stmt = stmt.on_conflict_do_update(
            index_elements=["key"],
            set_={
                "count": sa.case((lapsed, amount), else_=table.c.count + amount),
                "expires_at": sa.case((lapsed, now + expiry), else_=table.c.expires_at),
            },
        ).returning(table.c.count)
        with db.engine.begin() as conn:
            return int(conn.execute(stmt).scalar_one())

    def get(self, key: str) -> int:
        with db.engine.connect() as conn:
            value = conn.execute(
                sa.select(RateLimitCounter.count).where(
                    RateLimitCounter.key == key, RateLimitCounter.expires_at > time.time())
            ).scalar_one_or_none()
        return int(value or 0)

    def get_expiry(self, key: str) -> float:
        with db.engine.connect() as conn:
            value = conn.execute(
                sa.select(RateLimitCounter.expires_at).where(RateLimitCounter.key == key)
            ).scalar_one_or_none()
        return float(value) if value is not None else time.time()

    def check(self) -> bool:
        try:
            with db.engine.connect() as conn:
                conn.execute(sa.select(1))
        except sa.exc.SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        with db.engine.begin() as conn:
            return conn.execute(sa.delete(RateLimitCounter)).rowcount

    def clear(self, key: str) -> None:
        with db.engine.begin() as conn:
            conn.execute(sa.delete(RateLimitCounter).where(RateLimitCounter.key == key))


def init_app(app: Flask) -> None:
    """Bind the limiter and the 429 page to the app."""
    app.config.setdefault("RATELIMIT_STORAGE_URI", DB_STORAGE_URI)
    app.config.setdefault("RATELIMIT_STRATEGY", "fixed-window")
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    limiter.init_app(app)

    @app.errorhandler(TooManyRequests)
    def too_many_requests(e):
        # Audited with the endpoint and limit only: a typed e-mail address may be anyone's.
        item = getattr(getattr(e, "limit", None), "limit", None)
        audit.record("auth.rate_limited", actor_label="anonymous", endpoint=request.endpoint,
                     limit=str(item or e.description)[:80])
        db.session.commit()
        seconds = item.get_expiry() if item is not None else 60
        if request.accept_mimetypes.best == "application/json":
            return jsonify(error="too many requests", retry_after_seconds=seconds), 429
        minutes = max(1, round(seconds / 60))
        return render_template("errors/rate_limited.html", minutes=minutes), 429
