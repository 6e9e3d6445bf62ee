"""QA correction of a study's final original read (the old version is kept and shown)."""

from __future__ import annotations

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from wtforms import SelectChoice

from qaportal import audit
from qaportal.extensions import db
from qaportal.forms_choices import choices
from qaportal.models import User, UserRole
from qaportal.permissions import can_correct_read, role_required
from qaportal.studies import bp
from qaportal.studies.corrections import correct_original_read
from qaportal.studies.forms import ReadCorrectionForm
from qaportal.studies.presenter import present
from qaportal.studies.queries import study_for
from qaportal.studies.service import StudyError


def _reader_choices(current: User) -> list[SelectChoice]:
    """Return the active radiologists by name, and the read's reader even if no longer so."""
    people = db.session.scalars(
        sa.select(User).where(User.active.is_(True),
                              User.roles.any(UserRole.role == "radiologist"))
        .order_by(User.full_name)
    ).all()
    pairs = [(u.id, u.full_name) for u in people]
    if all(value != current.id for value, _ in pairs):
        pairs.insert(0, (current.id, current.full_name))
    return choices(pairs)


@bp.route("/<int:study_id>/read/correct", methods=["GET", "POST"])
@role_required("qa_manager", "admin")
def correct_read(study_id: int):
    study, mode = study_for(current_user, study_id)
    if not can_correct_read(current_user, study):
        abort(403)
    read = study.read
    if read is None or not read.is_final:
        abort(404)  # nothing final to correct: the uploader edits a preliminary read
    form = ReadCorrectionForm()
    form.reader_id.choices = _reader_choices(read.reader)
    if request.method == "GET":
        form.reader_id.data = read.reader_id
        form.report_text.data = read.report_text
    if form.validate_on_submit():
        reader = db.session.get(User, form.reader_id.data)
        try:
            version = correct_original_read(
                study, by=current_user, reader=reader, report_text=form.report_text.data,
                reason=form.reason.data, keep_final=form.keep_final.data)
        except StudyError as exc:
            db.session.rollback()
            form.reason.errors = [*form.reason.errors, str(exc)]
        else:
            db.session.commit()
            flash(f"Report corrected; version {version.version} is kept in the history."
                  " Reviews scored on it are flagged for QA.", "success")
            return redirect(url_for("studies.detail", study_id=study.id) + "#read-history")
    audit.record("study.read_correction_viewed", study, read_id=read.id)
    db.session.commit()
    return render_template("studies/correct_read.html", study=study, read=read, form=form,
                           view=present(study, mode))
