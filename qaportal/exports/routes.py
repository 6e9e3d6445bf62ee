"""The owner's view of a background export: progress, then the download."""

from __future__ import annotations

import hashlib
from pathlib import Path

import sqlalchemy as sa
from flask import (
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    send_file,
    url_for,
)
from flask_login import current_user

from qaportal import audit
from qaportal.exports import bp
from qaportal.exports.service import job_for
from qaportal.extensions import db
from qaportal.models import ExportJob
from qaportal.permissions import role_required

EXPORT_ROLES = ("radiologist", "qa_manager", "admin")
RECENT = 20


def status_json(job: ExportJob) -> dict:
    """What the status page polls (no parameters: filters may name staff)."""
    done = job.status == "done"
    download = None
    if done and job.kind == "audit_csv":
        download = url_for("exports.download", job_id=job.id)
    elif done and job.report_export is not None:
        download = url_for("reports.download", document_id=job.report_export.document_id)
    return {"id": job.id, "status": job.status, "progress": job.progress,
            "rows_done": job.rows_done, "rows_total": job.rows_total,
            "message": job.message, "download_url": download,
            "status_url": url_for("exports.job_status", job_id=job.id)}


@bp.route("/")
@role_required(*EXPORT_ROLES)
def jobs():
    rows = db.session.scalars(
        sa.select(ExportJob).where(ExportJob.requested_by_id == current_user.id)
        .order_by(ExportJob.id.desc()).limit(RECENT)).all()
    return render_template("exports/jobs.html", jobs=rows, status=status_json)


@bp.route("/<int:job_id>")
@role_required(*EXPORT_ROLES)
def job(job_id: int):
    found = job_for(current_user, job_id)
    return render_template("exports/job.html", job=found, status=status_json(found))


@bp.route("/<int:job_id>/status")
@role_required(*EXPORT_ROLES)
def job_status(job_id: int):
    return jsonify(status_json(job_for(current_user, job_id)))


@bp.route("/<int:job_id>/download")
@role_required(*EXPORT_ROLES)
def download(job_id: int):
    found = job_for(current_user, job_id)
    if found.status != "done":
        abort(409)
    if found.kind != "audit_csv":
        return redirect(status_json(found)["download_url"])
    path = Path(current_app.config["EXPORT_ROOT"]) / found.storage_key
    if not _intact(path, found.sha256):
        audit.record("export.file_damaged", found, kind=found.kind)
        db.session.commit()
        abort(410)
    audit.record("audit.exported", found, background=True, rows=found.rows_done,
                 filters=found.parameters)
    db.session.commit()
    name = f"audit-{found.finished_at:%Y%m%dT%H%M%SZ}.csv"
    response: Response = send_file(path, mimetype="text/csv", as_attachment=True,
                                   download_name=name, max_age=0)
    response.headers["Cache-Control"] = "no-store"
    return response


def _intact(path: Path, sha256: str | None) -> bool:
    """Whether the stored file is there and still has its recorded SHA-256."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    except FileNotFoundError:
        return False
    return digest.hexdigest() == sha256
