"""Clinical context of an upload's studies: one form per study when it held several.

A context typed once on the upload page is applied only when the upload held one study (the
uploader's). With several, it is applied to none: it is kept on the batch to prefill
each study's own form on the summary, and saving text typed once for the whole upload
needs that study's own confirmation.
"""

from __future__ import annotations

from datetime import datetime

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user

from qaportal import audit
from qaportal.extensions import db
from qaportal.models import Study, UploadBatch, User
from qaportal.permissions import role_required
from qaportal.studies import bp, service
from qaportal.studies.forms import BatchStudyContextForm, StudyContextForm
from qaportal.studies.presenter import present

NOTE_FIELDS = ("clinical_question", "clinical_history", "report_text")


def study_label(study: Study) -> str:
    """Name a study in messages by description, modality and date (no patient identifier)."""
    return present(study, "full").label


def batch_studies(batch: UploadBatch) -> list[Study]:
    """Return the batch's studies that still exist, in upload order."""
    return [s for s in (db.session.get(Study, i) for i in batch.study_ids) if s is not None]


def own_studies(batch: UploadBatch, user: User) -> list[Study]:
    """Return the batch's studies this user uploaded (others keep their own context)."""
    return [s for s in batch_studies(batch) if s.owner_id == user.id]


def typed_context(form: StudyContextForm) -> dict | None:
    """Return what the upload form's context fields hold, or None when nothing was typed."""
    values = {name: (getattr(form, name).data or "").strip()
              for name in ("jurisdiction", *NOTE_FIELDS)}
    if not any(values.values()):
        return None
    typed_time = form.finalized_at.data  # in the browser's zone, as each form reads it
    return {**values, "reader_id": form.reader_id.data or None,
            "finalize_now": bool(form.finalize_now.data),
            "finalized_at": typed_time.isoformat() if typed_time else None}


def apply_upload_context(batch: UploadBatch, form: StudyContextForm) -> tuple[str, list[str]]:
    """Apply the upload form's context to a one-study upload, or hold it; return what
    happened ("none", "applied", "held") and the problems, each naming its study."""
    typed = typed_context(form)
    studies = own_studies(batch, current_user)
    if typed is None or not studies:
        return "none", []
    # Counted over every study of the upload: with two, the text may be meant for the one
    # someone else stored first, even though only this user's study could take it.
    if len(batch.study_ids) > 1:
        batch.pending_context = typed
        return "held", []
    study = studies[0]
    problems: list[str] = []
    reader = db.session.get(User, form.reader_id.data or current_user.id) or current_user
    if typed["jurisdiction"] or typed["clinical_question"] or typed["clinical_history"]:
        service.update_context(
            study, by=current_user, jurisdiction=typed["jurisdiction"] or study.jurisdiction,
            clinical_question=typed["clinical_question"] or study.clinical_question,
            clinical_history=typed["clinical_history"] or study.clinical_history,
        )
    if typed["report_text"]:
        try:
            service.set_original_read(study, by=current_user, reader=reader,
                                      report_text=typed["report_text"],
                                      finalized_at=form.finalized_utc())
        except service.StudyError as exc:
            problems.append(f"{study_label(study)}: {exc}")
    return "applied", problems


def _prefill(study: Study, pending: dict | None) -> dict:
    """Return a study form's values: the study's own, else the text typed for the upload."""
    pending = pending or {}
    read = study.read
    typed_time = pending.get("finalized_at")
    return {
        "jurisdiction": study.jurisdiction or pending.get("jurisdiction") or "",
        "clinical_question": study.clinical_question or pending.get("clinical_question", ""),
        "clinical_history": study.clinical_history or pending.get("clinical_history", ""),
        "report_text": read.report_text if read else pending.get("report_text", ""),
        "reader_id": read.reader_id if read else (pending.get("reader_id") or current_user.id),
        "finalize_now": False if read else bool(pending.get("finalize_now")),
        "finalized_at": (datetime.fromisoformat(typed_time)
                         if typed_time and not read else None),
    }


def context_form(study: Study, batch: UploadBatch, *, from_request: bool = False):
    """Return the study's own context form (prefixed, so several fit on one page)."""
    from qaportal.studies.upload_routes import reader_choices

    prefix = f"s{study.id}"
    if from_request:
        form = BatchStudyContextForm(prefix=prefix)
    else:
        form = BatchStudyContextForm(prefix=prefix, formdata=None,
                                     data=_prefill(study, batch.pending_context))
    form.reader_id.choices = reader_choices(current_user)
    return form


def render_summary(batch: UploadBatch, failed: tuple[int, BatchStudyContextForm] | None = None,
                   status: int = 200):
    """Render the upload summary; with several studies, each of the user's gets a form."""
    studies = batch_studies(batch)
    own = [s for s in studies if s.owner_id == current_user.id]
    if failed is not None:  # the summary is shown again (with patient names): audit it
        audit.record("study.upload_summary_viewed", batch, form_error=True)
        db.session.commit()
    forms = {}
    if len(studies) > 1:
        forms = {s.id: context_form(s, batch) for s in own}
        if failed is not None:
            forms[failed[0]] = failed[1]
    return render_template("studies/upload_summary.html", batch=batch, studies=studies,
                           forms=forms, labels={s.id: study_label(s) for s in studies}), status


def _reuses_shared_text(form: BatchStudyContextForm, study: Study, pending: dict | None) -> bool:
    """Return True when the form would newly give this study text typed for the upload."""
    if not pending:
        return False
    current = {"clinical_question": study.clinical_question,
               "clinical_history": study.clinical_history,
               "report_text": study.read.report_text if study.read else ""}
    for name in NOTE_FIELDS:
        value = (getattr(form, name).data or "").strip()
        if value and value == (pending.get(name) or "").strip() and value != current[name]:
            return True
    return False


@bp.route("/upload/batches/<int:batch_id>/studies/<int:study_id>/context", methods=["POST"])
@role_required("radiologist")
def batch_study_context(batch_id: int, study_id: int):
    """Save one study's clinical context and read from the upload summary."""
    batch = db.session.get(UploadBatch, batch_id)
    if batch is None or batch.user_id != current_user.id or study_id not in batch.study_ids:
        abort(404)
    study = db.session.get(Study, study_id)
    if study is None or study.owner_id != current_user.id:
        abort(404)  # uploaded first by someone else: its context is theirs
    form = context_form(study, batch, from_request=True)
    label = study_label(study)
    if not form.validate_on_submit():
        return render_summary(batch, (study.id, form), 422)
    if _reuses_shared_text(form, study, batch.pending_context) and not form.confirm_study.data:
        form.confirm_study.errors = [
            f"This text was typed once for the whole upload. Tick the box to confirm it "
            f"belongs to {label}, or change it."]
        return render_summary(batch, (study.id, form), 422)
    read = study.read
    try:
        service.update_context(study, by=current_user, jurisdiction=form.jurisdiction.data,
                               clinical_question=form.clinical_question.data,
                               clinical_history=form.clinical_history.data)
        if not (read is not None and read.is_final):
            reader = db.session.get(User, form.reader_id.data or current_user.id)
            service.set_original_read(study, by=current_user, reader=reader or current_user,
                                      report_text=form.report_text.data,
                                      finalized_at=form.finalized_utc())
    except service.StudyError as exc:
        db.session.rollback()
        form.report_text.errors = [*form.report_text.errors, f"{label}: {exc}"]
        return render_summary(batch, (study.id, form), 422)
    audit.record("study.upload_context_saved", study, batch_id=batch.id,
                 confirmed_shared=bool(form.confirm_study.data))
    db.session.commit()
    flash(f"Saved the clinical context of {label}.", "success")
    return redirect(url_for("studies.batch_summary", batch_id=batch.id)
                    + f"#study-context-{study.id}")
