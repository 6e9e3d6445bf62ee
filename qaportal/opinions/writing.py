"""The consultant's opinion page: draft (form and autosave), signature, addenda."""

from __future__ import annotations

from flask import (
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, logout_user

from qaportal import audit
from qaportal.auth import service as auth_service
from qaportal.auth import sessions
from qaportal.extensions import db
from qaportal.opinions import bp, signing
from qaportal.opinions.forms import AddendumForm, OpinionForm, SignForm
from qaportal.opinions.helpers import images_url, request_or_404, study_mode
from qaportal.opinions.routes import _render_detail
from qaportal.opinions.service import OpinionError, record_view
from qaportal.opinions.sla import sla_state
from qaportal.permissions import can_write_opinion
from qaportal.studies.presenter import present_for


def _writable(request_id: int):
    req, view = request_or_404(request_id, current_user)
    if not can_write_opinion(current_user, req):
        abort(403)
    return req, view


def _render_write(req, form: OpinionForm, sign_form: SignForm, status: int = 200):
    return render_template(
        "opinions/write.html", req=req, form=form, sign_form=sign_form,
        opinion=req.opinion, state=sla_state(req), images_url=images_url(req),
        study_view=present_for(current_user, req.study,
                               deidentified=study_mode(req, current_user) != "full").view,
        autosave_seconds=current_app.config["OPINION_AUTOSAVE_SECONDS"],
    ), status


def _rollback_keeping_refusal(req, exc: OpinionError):
    """Undo the action; a refused signature is audited and counts towards the lockout.

    Returns a redirect to the sign-in page when the refusals locked the account (the
    session ends, as after failed sign-ins); otherwise None.
    """
    db.session.rollback()
    if not isinstance(exc, signing.SignatureRefused):
        return None
    user = current_user._get_current_object()
    audit.record("opinion.signature_refused", req, actor=user)
    auth_service.register_failure(user, "wrong password or code when signing")
    db.session.commit()
    if not auth_service.is_locked(user):
        return None
    message = auth_service.locked_message(user)
    sessions.end_all(user, "account locked")  # a copied cookie must not outlive the lock
    db.session.commit()
    logout_user()
    session.clear()
    flash(message + " Your last autosaved draft is kept.", "error")
    return redirect(url_for("auth.login"))


def _form_data(form: OpinionForm) -> dict:
    return {name: getattr(form, name).data for name in signing.DRAFT_FIELDS}


@bp.route("/<int:request_id>/opinion", methods=["GET", "POST"])
def write(request_id: int):
    req, view = _writable(request_id)
    opinion = signing.draft_for(req, current_user)
    form = OpinionForm(obj=opinion)
    if request.method == "GET":
        record_view(req, current_user, view)
        db.session.commit()
        return _render_write(req, form, SignForm())
    if not form.validate_on_submit():
        return _render_write(req, form, SignForm(), 400)
    try:
        signing.save_draft(req, current_user, _form_data(form))
    except OpinionError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("opinions.detail", request_id=req.id))
    db.session.commit()
    flash("Draft saved.", "success")
    return redirect(url_for("opinions.write", request_id=req.id))


@bp.route("/<int:request_id>/draft", methods=["POST"])
def autosave(request_id: int):
    req, _ = request_or_404(request_id, current_user)
    if not can_write_opinion(current_user, req):
        return jsonify(error="not allowed"), 403
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return jsonify(error="expected a JSON object"), 400
    clean = {k: v for k, v in data.items()
             if k in signing.DRAFT_FIELDS and (v is None or isinstance(v, str))}
    try:
        opinion = signing.save_draft(req, current_user, clean)
    except OpinionError as exc:
        db.session.rollback()
        return jsonify(error=str(exc)), 409
    db.session.commit()
    saved = opinion.draft_saved_at
    return jsonify(saved_at=saved.isoformat() if saved else None)


@bp.route("/<int:request_id>/sign", methods=["POST"])
def sign(request_id: int):
    req, _ = _writable(request_id)
    form = OpinionForm()
    sign_form = SignForm()
    if not (form.validate_on_submit() and sign_form.validate()):
        return _render_write(req, form, sign_form, 400)
    try:
        # What is on the screen is what gets signed.
        signing.save_draft(req, current_user, _form_data(form))
        signing.sign(req, current_user, sign_form.secret.data)
    except OpinionError as exc:
        if (locked := _rollback_keeping_refusal(req, exc)) is not None:
            return locked
        sign_form.secret.errors = [*sign_form.secret.errors, str(exc)]
        return _render_write(req, form, sign_form, 400)
    db.session.commit()
    flash(f"Opinion on request #{req.id} signed. It can no longer be edited; "
          "add an addendum for later corrections.", "success")
    return redirect(url_for("opinions.detail", request_id=req.id))


@bp.route("/<int:request_id>/addenda", methods=["POST"])
def addendum(request_id: int):
    req, view = request_or_404(request_id, current_user)
    if req.opinion is None or req.opinion.author_id != current_user.id:
        abort(403)
    form = AddendumForm()
    if not form.validate_on_submit():
        return _render_detail(req, view, 400, addendum_form=form)
    try:
        signing.add_addendum(req, current_user, form.text.data, form.secret.data)
    except OpinionError as exc:
        if (locked := _rollback_keeping_refusal(req, exc)) is not None:
            return locked
        form.secret.errors = [*form.secret.errors, str(exc)]
        return _render_detail(req, view, 400, addendum_form=form)
    db.session.commit()
    flash("Addendum signed.", "success")
    return redirect(url_for("opinions.detail", request_id=req.id, _anchor="opinion"))
