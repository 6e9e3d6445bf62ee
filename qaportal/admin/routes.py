"""Views for administrators: users, roles, credentials."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from qaportal.admin import bp, service
from qaportal.admin.forms import (
    CertificationForm,
    FilterForm,
    LicenseForm,
    PrivilegeForm,
    UserForm,
)
from qaportal.auth import tokens
from qaportal.auth.forms import EmptyForm
from qaportal.extensions import db
from qaportal.feeds.reader_ids import ReaderIdError, set_reader_id
from qaportal.models import ApiToken, User, UserRole
from qaportal.models.credentials import validity_status
from qaportal.passwords import generate_password
from qaportal.permissions import role_required


def _user_or_404(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    return user


@bp.route("/users")
@role_required("admin")
def users():
    form = FilterForm(request.args)
    stmt = sa.select(User).order_by(User.full_name)
    if form.validate():
        if form.q.data:
            like = f"%{form.q.data.strip().lower()}%"
            stmt = stmt.where(sa.or_(sa.func.lower(User.full_name).like(like),
                                     User.email.like(like)))
        if form.role.data:
            stmt = stmt.where(User.roles.any(UserRole.role == form.role.data))
        if form.status.data:
            stmt = stmt.where(User.active.is_(form.status.data == "active"))
    return render_template("admin/users.html", users=db.session.scalars(stmt).all(), form=form)


@bp.route("/users/new", methods=["GET", "POST"])
@role_required("admin")
def user_new():
    form = UserForm()
    if form.validate_on_submit():
        password = generate_password()
        try:
            user = service.create_user(
                form.email.data, form.full_name.data, form.roles.data, password,
                by=current_user, subspecialties=form.subspecialties.data,
            )
        except service.AdminError as exc:
            form.email.errors.append(str(exc))
        else:
            db.session.commit()
            return render_template("admin/password_shown.html", user=user, password=password,
                                   created=True)
    return render_template("admin/user_form.html", form=form, user=None)


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@role_required("admin")
def user_edit(user_id: int):
    user = _user_or_404(user_id)
    form = UserForm(obj=user)
    if request.method == "GET":
        form.roles.data = sorted(user.role_names)
        form.subspecialties.data = sorted(user.subspecialty_names)
    if form.validate_on_submit():
        try:
            service.update_user(
                user, email=form.email.data, full_name=form.full_name.data,
                roles=form.roles.data, subspecialties=form.subspecialties.data,
                active=form.active.data, by=current_user,
            )
            set_reader_id(user, form.reader_id.data, by=current_user, roles=form.roles.data)
        except service.AdminError as exc:
            db.session.rollback()
            flash(str(exc), "error")
        except ReaderIdError as exc:
            db.session.rollback()
            form.reader_id.errors = [*form.reader_id.errors, str(exc)]
            return _render_edit(user, form=form, status=422)
        else:
            db.session.commit()
            flash("Saved.", "success")
            return redirect(url_for("admin.user_edit", user_id=user.id))
    return _render_edit(user, form=form)


def _render_edit(user: User, *, form=None, license_form=None, cert_form=None, priv_form=None,
                 status=200):
    """Render the account page; a form that failed keeps what was typed."""
    if form is None:
        form = UserForm(obj=user, formdata=None)
        form.roles.data = sorted(user.role_names)
        form.subspecialties.data = sorted(user.subspecialty_names)
    today = date.today()
    warn = current_app.config["CREDENTIAL_EXPIRY_WARNING_DAYS"]
    return render_template(
        "admin/user_form.html", form=form, user=user, action_form=EmptyForm(),
        license_form=license_form or LicenseForm(prefix="lic", formdata=None),
        cert_form=cert_form or CertificationForm(prefix="cert", formdata=None),
        priv_form=priv_form or PrivilegeForm(prefix="priv", formdata=None),
        licences=[(lic, validity_status(lic.valid_to, today, warn)) for lic in user.licenses],
        certs=[(c, validity_status(c.expires_on, today, warn)) for c in user.certifications],
        privileges=[(p, validity_status(p.valid_to, today, warn)) for p in user.privileges],
    ), status


@bp.route("/users/<int:user_id>/<any(deactivate, activate, unlock, reset):action>",
          methods=["POST"])
@role_required("admin")
def user_action(user_id: int, action: str):
    user = _user_or_404(user_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        if action == "reset":
            password = generate_password()
            service.reset_password(user, password, by=current_user)
            db.session.commit()
            return render_template("admin/password_shown.html", user=user, password=password,
                                   created=False)
        if action == "unlock":
            service.unlock(user, by=current_user)
            message = "Account unlocked."
        else:
            service.set_active(user, action == "activate", by=current_user)
            message = "Account reactivated." if action == "activate" else "Account deactivated."
    except service.AdminError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        db.session.commit()
        flash(message, "success")
    return redirect(url_for("admin.user_edit", user_id=user.id))


@bp.route("/users/<int:user_id>/licenses", methods=["POST"])
@role_required("admin")
def license_add(user_id: int):
    user = _user_or_404(user_id)
    form = LicenseForm(prefix="lic")
    if form.validate_on_submit():
        service.add_license(user, by=current_user, jurisdiction=form.jurisdiction.data,
                            number=form.number.data, valid_from=form.valid_from.data,
                            valid_to=form.valid_to.data)
        db.session.commit()
        flash("Licence added.", "success")
    else:
        return _render_edit(user, license_form=form, status=422)
    return redirect(url_for("admin.user_edit", user_id=user.id) + "#credentials")


@bp.route("/users/<int:user_id>/certifications", methods=["POST"])
@role_required("admin")
def certification_add(user_id: int):
    user = _user_or_404(user_id)
    form = CertificationForm(prefix="cert")
    if form.validate_on_submit():
        service.add_certification(user, by=current_user, board=form.board.data,
                                  specialty=form.specialty.data,
                                  certified_on=form.certified_on.data,
                                  expires_on=form.expires_on.data)
        db.session.commit()
        flash("Certification added.", "success")
    else:
        return _render_edit(user, cert_form=form, status=422)
    return redirect(url_for("admin.user_edit", user_id=user.id) + "#credentials")


@bp.route("/users/<int:user_id>/privileges", methods=["POST"])
@role_required("admin")
def privilege_add(user_id: int):
    user = _user_or_404(user_id)
    form = PrivilegeForm(prefix="priv")
    if form.validate_on_submit():
        service.add_privilege(user, by=current_user, facility=form.facility.data,
                              description=form.description.data,
                              granted_on=form.granted_on.data, valid_to=form.valid_to.data,
                              notes=form.notes.data)
        db.session.commit()
        flash("Privilege added.", "success")
    else:
        return _render_edit(user, priv_form=form, status=422)
    return redirect(url_for("admin.user_edit", user_id=user.id) + "#credentials")


@bp.route("/users/<int:user_id>/<any(license, certification, privilege):kind>/<int:item_id>"
          "/remove", methods=["POST"])
@role_required("admin")
def credential_remove(user_id: int, kind: str, item_id: int):
    user = _user_or_404(user_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        service.remove_credential(user, kind, item_id, by=current_user)
    except service.AdminError:
        abort(404)
    db.session.commit()
    flash("Removed.", "success")
    return redirect(url_for("admin.user_edit", user_id=user.id) + "#credentials")


@bp.route("/tokens")
@role_required("admin")
def api_tokens():
    """Every API token of every user, for administrators."""
    return render_template("admin/api_tokens.html", api_tokens=tokens.all_tokens(),
                           action_form=EmptyForm())


@bp.route("/tokens/<int:token_id>/revoke", methods=["POST"])
@role_required("admin")
def api_token_revoke(token_id: int):
    """Revoke any user's token."""
    token = db.session.get(ApiToken, token_id)
    if token is None:
        abort(404)
    if not EmptyForm().validate_on_submit():
        abort(400)
    if tokens.revoke(token, by=current_user._get_current_object(),
                     reason="revoked by an administrator"):
        db.session.commit()
        flash(f"Token {token.token_prefix}… of {token.user.email} revoked.", "success")
    else:
        flash("That token was revoked already.", "info")
    return redirect(url_for("admin.api_tokens"))
