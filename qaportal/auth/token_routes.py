"""Views for the user's own API tokens, on the account page."""

from __future__ import annotations

from flask import (
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user

from qaportal.auth import bp, service, tokens
from qaportal.auth.forms import ApiTokenForm, EmptyForm
from qaportal.auth.routes import render_account, sign_out_locked
from qaportal.extensions import db
from qaportal.models import ApiToken
from qaportal.passwords import verify_password

# The nonces of the last token forms that created a token (the cookie holds no secret).
SENT_KEY = "api_token_forms_sent"
KEEP_SENT = 5


def _api_base() -> str:
    """The DICOMweb base URL to show next to a new token."""
    base = current_app.config.get("BASE_URL") or request.host_url
    return base.rstrip("/") + "/dicomweb"


@bp.route("/account/tokens", methods=["POST"])
def token_create():
    """Create a token after re-entering the password; show its secret on this page only."""
    user = current_user._get_current_object()
    form = ApiTokenForm()
    if not form.validate_on_submit():
        return render_account(token_form=form, status=422)
    if form.nonce.data in session.get(SENT_KEY, []):
        flash("That form was sent already; the token it created was shown once. "
              "Create another one if you need it.", "info")
        return redirect(url_for("auth.account") + "#api-tokens")
    if service.is_locked(user) or not verify_password(user.password_hash, form.password.data):
        # A token is a long-lived credential: a stolen session must not mint one by guessing.
        if not service.is_locked(user):
            service.register_failure(user, "wrong password for a new API token")
        if service.is_locked(user):
            return sign_out_locked(user)
        db.session.commit()
        form.password.errors.append("This is not your current password.")
        return render_account(token_form=form, status=422)
    try:
        new = tokens.create(user, label=form.label.data, scopes=form.scopes.data,
                            expires_days=form.expires_days(), by=user)
    except tokens.TokenError as exc:
        db.session.rollback()
        form.label.errors.append(str(exc))
        return render_account(token_form=form, status=422)
    db.session.commit()
    session[SENT_KEY] = [*session.get(SENT_KEY, [])[-(KEEP_SENT - 1):], form.nonce.data]
    # Shown in this response only: never flashed (the cookie), never stored, never cached.
    response = make_response(render_template(
        "auth/token_created.html", token=new.token, secret=new.secret, api_base=_api_base()))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/account/tokens/<int:token_id>/revoke", methods=["POST"])
def token_revoke(token_id: int):
    """Revoke one of the user's own tokens (another's answers 404)."""
    user = current_user._get_current_object()
    token = db.session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id:
        abort(404)
    if not EmptyForm().validate_on_submit():
        abort(400)
    if tokens.revoke(token, by=user, reason="revoked by its owner"):
        db.session.commit()
        flash(f"The token “{token.label}” is revoked.", "success")
    else:
        flash("That token was revoked already.", "info")
    return redirect(url_for("auth.account") + "#api-tokens")
