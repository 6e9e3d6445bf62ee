"""Views for signing in and out and for the user's own account."""

from __future__ import annotations

import base64
import time
from datetime import date
from urllib.parse import urlsplit

import segno
from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from qaportal import audit
from qaportal.auth import bp, service, sessions, tokens
from qaportal.auth.forms import (
    ApiTokenForm,
    ChangePasswordForm,
    EmptyForm,
    LoginForm,
    TotpDisableForm,
    TotpForm,
)
from qaportal.extensions import db
from qaportal.models import User
from qaportal.models.credentials import validity_status
from qaportal.passwords import policy_problems, verify_password
from qaportal.ratelimit import limiter, sign_in_limit

PENDING_KEY = "pending_2fa"
PENDING_AT_KEY = "pending_2fa_at"
# The code step must follow the password step within this many seconds.
PENDING_SECONDS = 300


def safe_next(target: str | None) -> str | None:
    """Return target when it is a path on this site, else None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    parts = urlsplit(target)
    # Browsers drop tabs and newlines inside URLs ("/\t/evil" becomes "//evil"): refuse
    # every control character, and backslashes, which some read as slashes.
    if parts.scheme or parts.netloc or any(c == "\\" or ord(c) < 32 or c == "\x7f"
                                           for c in target):
        return None
    return target


def _finish_login(user: User, method: str):
    nxt = safe_next(request.args.get("next"))
    service.complete_login(user, method)
    token = sessions.start(user)
    db.session.commit()
    session.clear()  # a fresh session on sign-in: no fixation
    login_user(user)
    session["_user_id"] = token  # the cookie names the server-side session, nothing more
    session.permanent = True
    # No greeting here: the home page greets, and a flash would say it a second time.
    return redirect(nxt or url_for("home.index"))


def _pending_user() -> User | None:
    """Return the user who passed the password step and owes a code, if still in time."""
    token, since = session.get(PENDING_KEY), session.get(PENDING_AT_KEY)
    if not token or since is None or time.time() - float(since) > PENDING_SECONDS:
        return None
    try:
        user_id, version = (int(p) for p in str(token).split("."))
    except ValueError:
        return None
    user = db.session.get(User, user_id)
    if user is None or not user.active or user.session_version != version:
        return None
    return user


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(sign_in_limit, methods=["POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    form = LoginForm()
    if form.validate_on_submit():
        outcome = service.attempt_login(form.email.data, form.password.data)
        db.session.commit()  # failures and lockouts are recorded even though sign-in fails
        if not outcome.ok:
            flash(outcome.message, "error")
            return render_template("auth/login.html", form=form), 401
        user = outcome.user
        if user.totp_enabled:
            session.clear()
            session[PENDING_KEY] = user.get_id()
            session[PENDING_AT_KEY] = time.time()
            return redirect(url_for("auth.login_totp", next=request.args.get("next")))
        return _finish_login(user, "password")
    return render_template("auth/login.html", form=form)


@bp.route("/login/verify", methods=["GET", "POST"])
@limiter.limit(sign_in_limit, methods=["POST"])
def login_totp():
    user = _pending_user()
    if user is None:
        session.pop(PENDING_KEY, None)
        flash("Please sign in first.", "info")
        return redirect(url_for("auth.login"))
    form = TotpForm()
    if form.validate_on_submit():
        if service.is_locked(user):
            # Wrong codes count towards the lockout like wrong passwords: no code guessing.
            session.pop(PENDING_KEY, None)
            flash(service.FAILED_MESSAGE, "error")
            return redirect(url_for("auth.login"))
        if service.check_totp(user, form.code.data):
            return _finish_login(user, "password+totp")
        service.register_failure(user, "wrong authentication code")
        db.session.commit()
        if service.is_locked(user):
            session.pop(PENDING_KEY, None)
            flash(service.FAILED_MESSAGE, "error")
            return redirect(url_for("auth.login"))
        flash("That code is not valid. Check your authenticator app's clock and try again.",
              "error")
    return render_template("auth/login_totp.html", form=form)


@bp.route("/logout", methods=["POST"])
def logout():
    form = EmptyForm()
    if form.validate_on_submit():
        row = sessions.current()
        if row is not None:
            sessions.end(row, "signed out")
        audit.record("auth.logout", current_user._get_current_object())
        db.session.commit()
        logout_user()
        session.clear()
        flash("You have signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account")
def account():
    return render_account()


def render_account(token_form: ApiTokenForm | None = None, status: int = 200):
    """Render the account page; a token form that failed keeps what was typed."""
    user = current_user._get_current_object()
    today = date.today()
    warn = current_app.config["CREDENTIAL_EXPIRY_WARNING_DAYS"]
    licences = [(lic, validity_status(lic.valid_to, today, warn)) for lic in user.licenses]
    certs = [(c, validity_status(c.expires_on, today, warn)) for c in user.certifications]
    privileges = [(p, validity_status(p.valid_to, today, warn)) for p in user.privileges]
    return render_template(
        "auth/account.html", licences=licences, certs=certs, privileges=privileges,
        disable_form=TotpDisableForm(), api_tokens=tokens.user_tokens(user),
        token_form=token_form or ApiTokenForm(formdata=None),
        token_limit=current_app.config["API_TOKENS_PER_USER"],
    ), status


@bp.route("/account/password", methods=["GET", "POST"])
def change_password():
    form = ChangePasswordForm()
    user = current_user._get_current_object()
    if form.validate_on_submit():
        if service.is_locked(user) or not verify_password(user.password_hash,
                                                          form.current_password.data):
            # Counted like a wrong sign-in password: a stolen session cannot guess it.
            if not service.is_locked(user):
                service.register_failure(user, "wrong current password")
            if service.is_locked(user):
                return sign_out_locked(user)
            db.session.commit()
            form.current_password.errors.append("This is not your current password.")
        else:
            problems = policy_problems(
                form.new_password.data, email=user.email, name=user.full_name
            )
            if form.new_password.data == form.current_password.data:
                problems.append("Choose a password different from the current one.")
            if problems:
                form.new_password.errors.extend(problems)
            else:
                service.change_password(user, form.new_password.data)
                row = sessions.current()
                sessions.end_all(user, "password changed", keep=row)
                if row is not None:
                    row.session_version = user.session_version  # this session stays open
                db.session.commit()
                flash("Your password was changed. Other sessions were signed out.", "success")
                return redirect(url_for("auth.account"))
    return render_template("auth/change_password.html", form=form)


def sign_out_locked(user: User):
    """End every session of a user whose account just locked, and say so generically."""
    sessions.end_all(user, "account locked")
    db.session.commit()
    logout_user()
    session.clear()
    flash(service.FAILED_MESSAGE, "error")
    return redirect(url_for("auth.login"))


@bp.route("/account/2fa", methods=["GET", "POST"])
def totp_enrol():
    user = current_user._get_current_object()
    if user.totp_enabled:
        flash("Two-factor sign-in is already on.", "info")
        return redirect(url_for("auth.account"))
    row = sessions.current()
    if row is None:  # pragma: no cover - require_login guarantees a session row
        return redirect(url_for("auth.login"))
    form = TotpForm()
    if not row.totp_pending_secret or request.method == "GET":
        # Kept on the server-side session row: the signed cookie is readable by its holder.
        row.totp_pending_secret = service.new_totp_secret()
    secret = row.totp_pending_secret
    if form.validate_on_submit():
        user.totp_last_step = None
        if service.check_totp(user, form.code.data, secret=secret):
            service.enable_totp(user, secret)
            row.totp_pending_secret = None
            db.session.commit()
            flash("Two-factor sign-in is on. You will be asked for a code when you sign in.",
                  "success")
            return redirect(url_for("auth.account"))
        form.code.errors.append("That code does not match. Scan the code again and retry.")
    db.session.commit()  # the pending secret must outlive this request
    uri = service.provisioning_uri(user, secret)
    svg = segno.make(uri, error="m").svg_inline(scale=5, dark="#111827", light="#ffffff")
    qr = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
    return render_template("auth/totp_enrol.html", form=form, qr=qr, secret=secret)


@bp.route("/account/2fa/disable", methods=["POST"])
def totp_disable():
    user = current_user._get_current_object()
    form = TotpDisableForm()
    required = set(current_app.config["REQUIRE_2FA_ROLES"])
    if required and user.has_role(*required):
        flash("Your role requires two-factor sign-in; it cannot be turned off.", "error")
    elif form.validate_on_submit() and verify_password(user.password_hash, form.password.data) \
            and service.check_totp(user, form.code.data):
        service.disable_totp(user)
        db.session.commit()
        flash("Two-factor sign-in is off.", "info")
    else:
        flash("Password or code not valid; two-factor sign-in stays on.", "error")
    return redirect(url_for("auth.account"))
