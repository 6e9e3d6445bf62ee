"""Unmapped readers: reads received by HL7/FHIR from radiologists no account is mapped to.

An administrator maps a reader identifier to an account (it becomes User.reader_id); the
reads waiting for that identifier are then matched to their studies.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField
from wtforms.validators import DataRequired, Length

from qaportal.admin import bp
from qaportal.extensions import db
from qaportal.feeds import reads  # the module: it imports the study rules, which import us
from qaportal.feeds.reader_ids import ReaderIdError, set_reader_id
from qaportal.forms_choices import choices
from qaportal.models import User, UserRole
from qaportal.permissions import role_required


class MapReaderForm(FlaskForm):
    reader_identifier = HiddenField(validators=[DataRequired(), Length(max=64)])
    user_id = SelectField("Account", coerce=int, validators=[DataRequired()])


def _candidates() -> list[User]:
    """Active radiologists without a reader identifier yet."""
    return list(db.session.scalars(
        sa.select(User).join(UserRole, UserRole.user_id == User.id)
        .where(UserRole.role == "radiologist", User.active.is_(True), User.reader_id.is_(None))
        .order_by(User.full_name, User.id)))


def _form(identifier: str = "") -> MapReaderForm:
    form = MapReaderForm(reader_identifier=identifier) if identifier else MapReaderForm()
    form.user_id.choices = choices((u.id, f"{u.full_name} ({u.email})") for u in _candidates())
    return form


@bp.route("/readers")
@role_required("admin")
def unmapped_reader_list():
    """The reader identifiers reads are waiting for, with a form to map each one."""
    rows = reads.unmapped_readers()
    return render_template("admin/unmapped_readers.html", rows=rows,
                           forms={r.reader_identifier: _form(r.reader_identifier)
                                  for r in rows})


@bp.route("/readers/map", methods=["POST"])
@role_required("admin")
def unmapped_reader_map():
    """Give an account the reader identifier, then match the reads waiting for it."""
    form = _form()
    if not form.validate_on_submit():
        flash("Choose an active radiologist without a reader identifier.", "error")
        return redirect(url_for("admin.unmapped_reader_list"))
    identifier = form.reader_identifier.data.strip()
    user = db.session.get(User, form.user_id.data)
    if user is None:
        abort(404)
    waiting = reads.waiting_count(identifier)
    try:
        set_reader_id(user, identifier, by=current_user._get_current_object())
    except ReaderIdError as exc:
        db.session.rollback()
        flash(f"Not mapped: {exc}.", "error")
        return redirect(url_for("admin.unmapped_reader_list"))
    matched = waiting - reads.waiting_count(identifier)
    db.session.commit()
    flash(f"Mapped to {user.full_name}; {matched} waiting read(s) matched.", "success")
    return redirect(url_for("admin.unmapped_reader_list"))
