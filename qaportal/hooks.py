"""Request hooks: default-deny login, idle timeout, enforced steps, headers, errors."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from flask import (
    Flask,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, logout_user
from flask_wtf.csrf import CSRFError

from qaportal.auth import sessions
from qaportal.extensions import db, login_manager

# Endpoints anyone may reach; everything else needs a signed-in user.
PUBLIC_ENDPOINTS = frozenset({"auth.login", "auth.login_totp", "static", "home.health"})
# Endpoints a user may reach while a mandatory step (password change, 2FA enrolment) is due.
STEP_ENDPOINTS = frozenset({
    "auth.logout", "auth.change_password", "auth.totp_enrol", "static", "home.health",
})

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'self'; form-action 'self'"
)


@login_manager.user_loader
def _load_user(token: str):
    return sessions.load(token)


def megabytes(n: int) -> str:
    """Format a byte count in MB (MiB) for messages: "1024", "64", "0.5"."""
    value = n / (1024 * 1024)
    return str(round(value)) if value >= 10 else f"{value:.2g}"


def _is_api_path() -> bool:
    return request.path.startswith(("/api/", *current_app.config["API_PATH_PREFIXES"]))


def _wants_json() -> bool:
    return _is_api_path() or request.accept_mimetypes.best == "application/json"


def _authentication_required(message: str):
    """The JSON 401 of the API; its WWW-Authenticate names the Bearer scheme."""
    response = jsonify(error=message)
    response.status_code = 401
    if _is_api_path():
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def init_app(app: Flask) -> None:
    """Install the hooks and error handlers on the app."""
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"

    @app.before_request
    def require_login():
        endpoint = request.endpoint
        if endpoint is None or endpoint in PUBLIC_ENDPOINTS:
            return None
        if g.get("api_token") is not None:
            # Authenticated by a Bearer token (qaportal.auth.tokens) for this request only:
            # no session to touch, no cookie, no mandatory step to redirect a machine to.
            return None
        if not current_user.is_authenticated:
            if sessions.expire_if_found() is not None:
                db.session.commit()
                logout_user()
                session.clear()
                flash("Your session ended (inactivity or the maximum session length). "
                      "Please sign in again.", "info")
                if _wants_json():
                    return _authentication_required("session expired")
                return redirect(url_for("auth.login"))
            if _wants_json():
                return _authentication_required("authentication required")
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        row = sessions.current()
        touched = row is not None and sessions.touch(row)
        session.permanent = True
        step = _pending_step(app)
        if step and endpoint not in STEP_ENDPOINTS:
            if touched:
                db.session.commit()
            return redirect(url_for(step))
        marked = (request.method == "GET" and not _is_api_path()
                  and mark_opened_notifications(current_user.id))
        if touched or marked:
            db.session.commit()  # before the view: its own transaction starts clean
        return None

    @app.after_request
    def security_headers(response):
        h = response.headers
        h.setdefault("Content-Security-Policy", CSP)
        h["X-Content-Type-Options"] = "nosniff"
        h["X-Frame-Options"] = "DENY"
        h["Referrer-Policy"] = "same-origin"
        h["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
        h["Cross-Origin-Opener-Policy"] = "same-origin"
        if not app.config["LOCAL"]:
            h["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        if request.endpoint != "static" and "Cache-Control" not in h:
            # Pages may carry patient data: never keep them in shared or disk caches.
            h["Cache-Control"] = "no-store"
        return response

    @app.teardown_request
    def rollback_on_error(exc):
        if exc is not None:
            db.session.rollback()

    def _error(code: int, title: str, message: str):
        if _wants_json():
            return jsonify(error=title.lower()), code
        return render_template("errors/error.html", code=code, title=title,
                               message=message), code

    @app.errorhandler(401)
    def unauthorized(e):
        return _error(401, "Sign-in required", "Please sign in to continue.")

    @app.errorhandler(403)
    def forbidden(e):
        return _error(403, "Not allowed", "Your account does not have access to this page.")

    @app.errorhandler(404)
    def not_found(e):
        return _error(404, "Not found", "There is nothing here, or you do not have access to it.")

    @app.errorhandler(405)
    def method_not_allowed(e):
        return _error(405, "Not allowed", "That action is not available here.")

    @app.errorhandler(413)
    def too_large(e):
        limit = megabytes(app.config["MAX_CONTENT_LENGTH"])
        message = f"The limit is {limit} MB per upload request."
        if _wants_json():
            return jsonify(error=f"upload too large: the limit is {limit} MB per upload request",
                           limit_mb=limit), 413
        return _error(413, "Upload too large", message)

    @app.errorhandler(CSRFError)
    def csrf_error(e):
        return _error(400, "Form expired",
                      "The form was open too long or was not sent from this portal. "
                      "Go back, reload the page and try again.")

    @app.errorhandler(500)
    def server_error(e):
        db.session.rollback()
        g.error_reference = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        app.logger.exception("unhandled error, reference %s", g.error_reference)
        return _error(500, "Something went wrong",
                      "The error was logged. Nothing was saved from this request; "
                      f"please try again. Reference {g.error_reference}.")


def mark_opened_notifications(user_id: int) -> bool:
    """Mark read the user's unread notifications that link to this page; True when any."""
    from qaportal.models import Notification, utcnow

    targets = sorted({request.path, request.full_path.rstrip("?")})
    ids = db.session.scalars(opened_notifications_stmt(user_id, targets)).all()
    if not ids:
        return False
    db.session.execute(sa.update(Notification).where(Notification.id.in_(ids))
                       .values(read_at=utcnow()))
    return True


def opened_notifications_stmt(user_id: int, links: list[str]) -> sa.Select:
    """The ids of the user's unread notifications linking to one of these pages (read
    through ix_notifications_unread_link: every request of a signed-in user runs it)."""
    from qaportal.models import Notification

    return sa.select(Notification.id).where(Notification.user_id == user_id,
                                            Notification.read_at.is_(None),
                                            Notification.link.in_(links))


def _pending_step(app: Flask) -> str | None:
    """Return the endpoint of a step the user must complete first, if any."""
    if current_user.must_change_password:
        return "auth.change_password"
    required = set(app.config["REQUIRE_2FA_ROLES"])
    if required and current_user.has_role(*required) and not current_user.totp_enabled:
        return "auth.totp_enrol"
    return None
