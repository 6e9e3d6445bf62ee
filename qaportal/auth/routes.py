"""Views for signing in and out and for the user's own account."""

from __future__ import annotations

import base64
from datetime import date
from urllib.parse import urlsplit

import segno
from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from qaportal import audit
from qaportal.auth import bp, service
from qaportal.auth.forms import (
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

PENDING_KEY = "pending_2fa"


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
    db.session.commit()
    session.clear()  # a fresh session on sign-in: no fixation
    login_user(user)
    session.permanent = True
    flash(f"Welcome, {user.full_name}.", "success")
    return redirect(nxt or url_for("home.index"))


@bp.route("/login", methods=["GET", "POST"])
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
            return redirect(url_for("auth.login_totp", next=request.args.get("next")))
        return _finish_login(user, "password")
    return render_template("auth/login.html", form=form)


@bp.route("/login/verify", methods=["GET", "POST"])
def login_totp():
    token = session.get(PENDING_KEY)
    user = None
    if token:
        from qaportal.hooks import _load_user

        user = _load_user(token)
    if user is None:
        flash("Please sign in first.", "info")
        return redirect(url_for("auth.login"))
    form = TotpForm()
    if form.validate_on_submit():
        if service.is_locked(user):
            # Wrong codes count towards the lockout like wrong passwords: no code guessing.
            session.pop(PENDING_KEY, None)
            flash(service.locked_message(user), "error")
            return redirect(url_for("auth.login"))
        if service.check_totp(user, form.code.data):
            return _finish_login(user, "password+totp")
        outcome = service.register_failure(user, "wrong authentication code")
        db.session.commit()
        if service.is_locked(user):
            session.pop(PENDING_KEY, None)
            flash(outcome.message, "error")
            return redirect(url_for("auth.login"))
        flash("That code is not valid. Check your authenticator app's clock and try again.",
              "error")
    return render_template("auth/login_totp.html", form=form)


@bp.route("/logout", methods=["POST"])
def logout():
    form = EmptyForm()
    if form.validate_on_submit():
        audit.record("auth.logout", current_user._get_current_object())
        db.session.commit()
        logout_user()
        session.clear()
        flash("You have signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account")
def account():
    user = current_user
    today = date.today()
    warn = current_app.config["CREDENTIAL_EXPIRY_WARNING_DAYS"]
    licences = [(lic, validity_status(lic.valid_to, today, warn)) for lic in user.licenses]
    certs = [(c, validity_status(c.expires_on, today, warn)) for c in user.certifications]
    privileges = [(p, validity_status(p.valid_to, today, warn)) for p in user.privileges]
    return render_template(
        "auth/account.html", licences=licences, certs=certs, privileges=privileges,
        disable_form=TotpDisableForm(),
    )


@bp.route("/account/password", methods=["GET", "POST"])
def change_password():
    form = ChangePasswordForm()
    user = current_user._get_current_object()
    if form.validate_on_submit():
        if not verify_password(user.password_hash, form.current_password.data):
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
                db.session.commit()
                login_user(user)  # the session id carries the new version
                flash("Your password was changed. Other sessions were signed out.", "success")
                return redirect(url_for("auth.account"))
    return render_template("auth/change_password.html", form=form)


@bp.route("/account/2fa", methods=["GET", "POST"])
def totp_enrol():
    user = current_user._get_current_object()
    if user.totp_enabled:
        flash("Two-factor sign-in is already on.", "info")
        return redirect(url_for("auth.account"))
    form = TotpForm()
    secret = session.get("totp_enrol_secret")
    if not secret or request.method == "GET":
        secret = service.new_totp_secret()
        session["totp_enrol_secret"] = secret
    if form.validate_on_submit():
        user.totp_last_step = None
        if service.check_totp(user, form.code.data, secret=secret):
            service.enable_totp(user, secret)
            db.session.commit()
            session.pop("totp_enrol_secret", None)
            flash("Two-factor sign-in is on. You will be asked for a code when you sign in.",
                  "success")
            return redirect(url_for("auth.account"))
        form.code.errors.append("That code does not match. Scan the code again and retry.")
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
