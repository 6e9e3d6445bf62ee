"""Reports pages: choose and preview a report, export it as PDF, download, verify."""

from __future__ import annotations

import sqlalchemy as sa
from flask import (
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from qaportal import audit
from qaportal.extensions import db
from qaportal.models import ReportExport
from qaportal.pdf import PdfError
from qaportal.permissions import (
    can_download_export,
    can_export_reports,
    can_open_report,
    role_required,
)
from qaportal.reports import bp, service, storage
from qaportal.reports.forms import VerifyForm
from qaportal.reports.registry import REPORTS, ReportDefinition, definition_or_404

RECENT_EXPORTS = 50
MAX_VERIFY_BYTES = 200 * 1024 * 1024


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


# Roles that may reach the reports pages at all; each report's audience narrows it down
# (radiologists see only the case packet of their own requests).
REPORT_ROLES = ("radiologist", "qa_manager", "admin")


def _offered() -> dict[str, ReportDefinition]:
    return {k: d for k, d in REPORTS.items() if can_open_report(current_user, d)}


def _index_page(kind: str, form, status: int = 200):
    stmt = sa.select(ReportExport)
    if not can_export_reports(current_user):  # others see only their own exports
        stmt = stmt.where(ReportExport.created_by_id == current_user.id)
    recent = db.session.scalars(
        stmt.order_by(ReportExport.created_at.desc(), ReportExport.id.desc())
        .limit(RECENT_EXPORTS)
    ).all()
    return render_template("reports/index.html", reports=_offered(), kind=kind,
                           definition=REPORTS[kind], form=form, recent=recent), status


def _allowed_definition(kind: str) -> ReportDefinition:
    definition = definition_or_404(kind)
    if not can_open_report(current_user, definition):
        abort(403)
    return definition


@bp.route("/")
@role_required(*REPORT_ROLES)
def index():
    offered = _offered()
    if not offered:
        abort(403)
    kind = request.args.get("kind", "")
    if kind not in offered:
        kind = next(iter(offered))
    definition = REPORTS[kind]
    form = service.bind_form(definition)
    form.confidential.data = definition.confidential_default
    form.prefill(request.args, current_user)
    return _index_page(kind, form)


@bp.route("/<kind>/preview")
@role_required(*REPORT_ROLES)
def preview(kind: str):
    definition = _allowed_definition(kind)
    args = MultiDict([(k, v) for k, v in request.args.items(multi=True) if k != "csrf_token"])
    form = service.bind_form(definition, args)
    if not form.validate():
        return _index_page(kind, form, 400)
    params = form.params()
    if not definition.allowed(current_user, params):
        abort(403)
    html, _ = service.render_html(kind, params, current_user, document_id="PREVIEW",
                                  generated_by=service.actor_label(current_user, ""), preview=True)
    audit.record("report.previewed", None, kind=kind, parameters=service.params_json(params))
    db.session.commit()
    return Response(html, mimetype="text/html")


@bp.route("/<kind>/export", methods=["POST"])
@role_required(*REPORT_ROLES)
def export(kind: str):
    definition = _allowed_definition(kind)
    form = service.bind_form(definition, request.form, csrf=True)
    if not form.validate():
        if _wants_json():
            return jsonify(error="Please correct the parameters.", fields=form.errors), 400
        return _index_page(kind, form, 400)
    params = form.params()
    if service.runs_in_background(params):
        return _queue_export(kind, form, params)
    try:
        record, pdf = service.create_export(kind, params, current_user)
    except service.ReportError as exc:
        return _export_failed(kind, form, str(exc), 403)
    except PdfError as exc:
        db.session.rollback()
        return _export_failed(kind, form, f"The PDF could not be made: {exc}.", 503)
    db.session.commit()
    link = url_for("reports.download", document_id=record.document_id)
    if _wants_json():
        return jsonify(document_id=record.document_id, download_url=link,
                       pages=record.page_count, size=record.size_bytes,
                       seconds=round(pdf.seconds, 1), title=record.title)
    flash(f"Report {record.document_id} is ready ({record.page_count} pages).", "success")
    return redirect(url_for("reports.index", kind=kind))


def _queue_export(kind: str, form, params: dict):
    """A report over a long period: made by the job worker, its page shows the progress."""
    from qaportal.exports.routes import status_json
    from qaportal.exports.service import start_report

    if not REPORTS[kind].allowed(current_user, params):
        return _export_failed(kind, form, "You may not produce this report with these "
                              "parameters.", 403)
    job = start_report(current_user, kind, params)
    db.session.commit()
    if _wants_json():
        return jsonify({**status_json(job), "job_url": url_for("exports.job", job_id=job.id)}), 202
    flash("The report covers a long period: it is being made in the background.", "success")
    return redirect(url_for("exports.job", job_id=job.id))


def _export_failed(kind: str, form, message: str, status: int):
    if _wants_json():
        return jsonify(error=message), status
    flash(message, "error")
    return _index_page(kind, form, status)


@bp.route("/exports/<document_id>.pdf")
def download(document_id: str):
    record = service.export_by_document_id(document_id)
    if record is None or not can_download_export(current_user, record):
        abort(404)
    try:
        data = storage.read_verified(record.storage_key, record.sha256)
    except storage.ExportFileError as exc:
        audit.record("report.file_damaged", record, document_id=record.document_id,
                     problem=str(exc))
        db.session.commit()
        abort(410)
    audit.record("report.downloaded", record, document_id=record.document_id)
    db.session.commit()
    return Response(data, mimetype="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{record.document_id}.pdf"',
    })


@bp.route("/verify", methods=["GET", "POST"])
def verify():
    form = VerifyForm()
    result = None
    if form.validate_on_submit():
        upload = form.file.data
        if upload:
            data = upload.read(MAX_VERIFY_BYTES + 1)
            if len(data) > MAX_VERIFY_BYTES:
                form.file.errors.append("The file is larger than any report this portal makes.")
                return render_template("reports/verify.html", form=form, result=None), 400
            result = service.verify_file(data)
            method = "file"
        else:
            result = service.verify_id(form.document_id.data)
            method = "id"
        claimed = service.export_by_document_id(result.claimed_id) if result.claimed_id else None
        audit.record("report.verified", result.export, method=method, genuine=result.genuine,
                     document_id=result.export.document_id if result.export else None,
                     sha256=result.sha256 if method == "file" else None)
        db.session.commit()
        return render_template("reports/verify.html", form=form, result=result,
                               method=method, claimed=claimed)
    status = 400 if form.is_submitted() else 200
    return render_template("reports/verify.html", form=form, result=result), status
