"""Upload views: a browser upload arrives as a batch of requests, each stored as it comes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import sqlalchemy as sa
from flask import (
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from werkzeug.utils import secure_filename
from wtforms import SelectChoice

from qaportal import audit
from qaportal.dicom import Received
from qaportal.extensions import db
from qaportal.forms_choices import choices
from qaportal.hooks import megabytes
from qaportal.models import UploadBatch, User, UserRole
from qaportal.permissions import role_required
from qaportal.studies import bp, jobs
from qaportal.studies.batch_context import apply_upload_context, render_summary
from qaportal.studies.forms import UploadForm
from qaportal.studies.receive import ReceivedFile


def reader_choices(me: User) -> list[SelectChoice]:
    """Return the radiologists who may be named as a study's reader, the current user first."""
    others = db.session.scalars(
        sa.select(User).where(User.active.is_(True), User.id != me.id,
                              User.roles.any(UserRole.role == "radiologist"))
        .order_by(User.full_name)
    ).all()
    mine = [(me.id, f"{me.full_name} (me)")] if me.has_role("radiologist") else []
    return choices(mine + [(u.id, u.full_name) for u in others])


def _upload_form() -> UploadForm:
    form = UploadForm()
    form.reader_id.choices = reader_choices(current_user)
    if request.method == "GET":
        form.reader_id.data = current_user.id
    return form


def _batch_or_404(batch_id: int) -> UploadBatch:
    batch = db.session.get(UploadBatch, batch_id)
    if batch is None or batch.user_id != current_user.id:
        abort(404)
    return batch


def _receive_files(batch: UploadBatch) -> dict:
    """Ingest this request's files; the request's close removes any the store did not take."""
    files = [f for f in request.files.getlist("files") if f and f.filename]
    inputs: list = []
    tmp = None
    try:
        for i, storage in enumerate(files):
            # The user's relative name (folder uploads) is for messages only; never a path.
            name = (storage.filename or f"file-{i}").replace("\\", "/")[-300:]
            if isinstance(storage.stream, ReceivedFile):
                storage.stream.finish()  # already in a private file, hashed on arrival
                inputs.append(Received(name, storage.stream.path, storage.stream.sha256))
                continue
            if tmp is None:
                tmp = jobs.saved_upload_dir(Path(current_app.config["UPLOAD_TMP"]))
            path = tmp / f"{i:05d}-{secure_filename(name.rsplit('/', 1)[-1]) or 'upload'}"
            storage.save(path)
            inputs.append((name, path))
        run = jobs.import_files(inputs, current_user.id, batch.id)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return {"stored": run.stored, "duplicates": run.duplicates, "conflicts": run.conflicts,
            "errors": run.errors, "results": run.results}


@bp.route("/upload", methods=["GET", "POST"])
@role_required("radiologist")
def upload():
    """The upload page; without JavaScript the form posts everything in one request."""
    form = _upload_form()
    if form.validate_on_submit():
        batch = jobs.new_batch(current_user, "browser")
        _receive_files(batch)
        return _finish(batch, form)
    return render_template("studies/upload.html", form=form,
                           chunk_bytes=current_app.config["UPLOAD_CHUNK_BYTES"],
                           max_request=current_app.config["MAX_CONTENT_LENGTH"])


@bp.route("/upload/batches", methods=["POST"])
@role_required("radiologist")
def batch_create():
    batch = jobs.new_batch(current_user, "browser")
    return jsonify(batch_id=batch.id,
                   files_url=url_for("studies.batch_files", batch_id=batch.id),
                   finish_url=url_for("studies.batch_finish", batch_id=batch.id)), 201


@bp.route("/upload/batches/<int:batch_id>/files", methods=["POST"])
@role_required("radiologist")
def batch_files(batch_id: int):
    batch = _batch_or_404(batch_id)
    if batch.finished_at is not None:
        return jsonify(error="This upload is already finished; start a new one."), 409
    return jsonify(_receive_files(batch))


@bp.route("/upload/batches/<int:batch_id>/finish", methods=["POST"])
@role_required("radiologist")
def batch_finish(batch_id: int):
    batch = _batch_or_404(batch_id)
    form = _upload_form()
    if not form.validate():
        return jsonify(error="Some fields are not valid.", fields=form.errors), 422
    if batch.finished_at is None:
        rejected = client_rejections(request.form.get("client_rejections", ""))
        if rejected:
            batch.errors = [*batch.errors, *rejected]
    response = _finish(batch, form)
    return jsonify(redirect=response.location)


MAX_CLIENT_REJECTIONS = 1000


def client_rejections(raw: str) -> list[dict]:
    """Turn the browser's list of files it did not send into batch errors, checked.

    The browser reports [{"file": name, "reason": "too_large" | "failed", "detail": text}]
    and how many more there were ({"more": n}); the messages are the server's own.
    """
    try:
        data = json.loads(raw) if raw else []
    except ValueError:
        return []
    if not isinstance(data, list):
        return []
    limit = megabytes(current_app.config["MAX_CONTENT_LENGTH"])
    errors: list[dict] = []
    more = 0
    for entry in data:
        if not isinstance(entry, dict):
            continue
        if isinstance(entry.get("more"), int) and entry["more"] > 0:
            more += entry["more"]
            continue
        name = entry.get("file")
        if not isinstance(name, str) or not name.strip():
            continue
        if len(errors) >= MAX_CLIENT_REJECTIONS:
            more += 1
            continue
        if entry.get("reason") == "too_large":
            error = f"not sent: larger than the {limit} MB limit per upload request"
        else:
            detail = str(entry.get("detail") or "the connection failed")[:200]
            error = (f"not stored: the upload of its part failed ({detail}); "
                     "upload it again (a copy already stored counts as a duplicate)")
        errors.append({"file": name.replace("\\", "/")[-300:], "error": error})
    if more:
        errors.append({"file": f"{more} more files", "error": "not sent (see above)"})
    return errors


def _finish(batch: UploadBatch, form: UploadForm):
    context, problems = apply_upload_context(batch, form)
    jobs.finish_batch(batch)
    audit.record("study.upload_finished", batch, stored=batch.stored,
                 duplicates=batch.duplicates, conflicts=batch.conflicts,
                 rejected=len(batch.errors) - batch.conflicts, context=context)
    db.session.commit()
    for p in problems:
        flash(p, "error")
    if context == "held":
        flash("This upload holds several studies, so the clinical context you typed was "
              "applied to none of them. Enter each study's own context below.", "warning")
    return redirect(url_for("studies.batch_summary", batch_id=batch.id))


@bp.route("/upload/batches/<int:batch_id>")
@role_required("radiologist")
def batch_summary(batch_id: int):
    batch = _batch_or_404(batch_id)
    audit.record("study.upload_summary_viewed", batch)
    db.session.commit()
    return render_summary(batch)
