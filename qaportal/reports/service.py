"""Produce, record and verify PDF exports; nothing here commits."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app
from werkzeug.datastructures import MultiDict

from qaportal import audit
from qaportal.extensions import db
from qaportal.models import ReportExport, User, utcnow
from qaportal.pdf import RenderedPdf, Renderer, RenderOptions, render_pdf
from qaportal.reports import storage
from qaportal.reports.registry import PEER_REVIEW_STATEMENT, REPORTS, ReportDefinition, ReportForm

DOCUMENT_ID_RE = re.compile(r"QAP-[A-Z2-7]{16}")


class ReportError(RuntimeError):
    """The report cannot be made as asked; the message is for the person asking."""


def new_document_id() -> str:
    """Return a fresh document id: "QAP-" and 16 base32 characters (80 random bits)."""
    return "QAP-" + base64.b32encode(secrets.token_bytes(10)).decode("ascii")


def bind_form(definition: ReportDefinition, formdata: MultiDict | None = None,
              *, csrf: bool = False) -> ReportForm:
    """Return the report's form bound to formdata (the request's when None)."""
    meta = {} if csrf else {"csrf": False}
    if formdata is None:
        return definition.form_class(meta=meta)
    return definition.form_class(formdata=formdata, meta=meta)


def params_json(params: dict[str, Any]) -> dict[str, Any]:
    """Return parameters as JSON values (dates as ISO strings)."""
    return {k: v.isoformat() if isinstance(v, date | datetime) else v
            for k, v in params.items()}


@dataclass(frozen=True)
class DocumentInfo:
    """What every printed report shows about itself: id, title, when, by whom."""

    document_id: str
    kind: str
    title: str
    generated_at: datetime
    generated_by: str
    confidentiality: str | None
    preview: bool
    signatories: tuple[str, ...]


def actor_label(user: User | None, fallback: str) -> str:
    """Return how an exporter is named: name and e-mail, or the command-line label."""
    return f"{user.full_name} <{user.email}>" if user is not None else fallback


def render_html(kind: str, params: dict[str, Any], user: User | None, *, document_id: str,
                generated_by: str, preview: bool = False,
                generated_at: datetime | None = None) -> tuple[str, DocumentInfo]:
    """Return the report's print HTML (the same for preview and PDF) and its details."""
    definition = REPORTS[kind]
    context = definition.build_context(params, user)
    doc = DocumentInfo(
        document_id=document_id, kind=kind, title=context.pop("title", definition.title),
        generated_at=generated_at or utcnow(), generated_by=generated_by,
        confidentiality=PEER_REVIEW_STATEMENT if params.get("confidential") else None,
        preview=preview, signatories=definition.signatories,
    )
    # The app's Jinja environment without request context processors: a report needs
    # no navigation or session, and renders the same on the command line.
    template = current_app.jinja_env.get_template(definition.template)
    return template.render(doc=doc, params=params, **context), doc


def render_options(document_id: str) -> RenderOptions:
    """Return the render settings from the app's configuration."""
    cfg = current_app.config
    return RenderOptions(timeout=float(cfg["PDF_TIMEOUT"]), page_size=cfg["PDF_PAGE_SIZE"],
                         variant=cfg["PDF_VARIANT"], memory_mb=int(cfg["PDF_MEMORY_MB"]),
                         identifier=document_id)


def runs_in_background(params: dict[str, Any]) -> bool:
    """Whether a web export of these parameters goes to the job queue: a period longer
    than REPORT_BACKGROUND_DAYS (a year by default) takes longer than a request should."""
    first, last = params.get("date_from"), params.get("date_to")
    if not isinstance(first, date) or not isinstance(last, date):
        return False
    return (last - first).days + 1 > int(current_app.config["REPORT_BACKGROUND_DAYS"])


def create_export(kind: str, params: dict[str, Any], user: User | None,
                  *, label: str | None = None) -> tuple[ReportExport, RenderedPdf]:
    """Render the report to PDF, store it, record it and audit it; the caller commits.

    user is None on the command line (label then names the operator). Raises
    ReportError when the user may not make this report, PdfError when rendering fails.
    """
    definition = REPORTS[kind]
    if user is not None and not definition.allowed(user, params):
        raise ReportError("You may not produce this report with these parameters.")
    document_id = new_document_id()
    created_at = utcnow()
    by = label or actor_label(user, "command line")
    # The render process starts now and loads WeasyPrint while the report is gathered.
    with Renderer() as renderer:
        html, doc = render_html(kind, params, user, document_id=document_id, generated_by=by,
                                generated_at=created_at)
        pdf = render_pdf(html, render_options(document_id), renderer)
    key = f"{created_at:%Y/%m}/{document_id}.pdf"
    export = ReportExport(
        document_id=document_id, kind=kind, title=doc.title[:200],
        parameters=params_json(params), created_by_id=user.id if user else None,
        created_by_label=by, created_at=created_at,
        sha256=hashlib.sha256(pdf.data).hexdigest(), size_bytes=len(pdf.data),
        page_count=pdf.page_count, storage_key=key,
    )
    storage.write(key, pdf.data)
    try:
        db.session.add(export)
        db.session.flush()
        audit.record("report.exported", export, actor=user, actor_label=label,
                     kind=kind, document_id=document_id, sha256=export.sha256,
                     pages=export.page_count, parameters=export.parameters)
    except Exception:
        storage.remove(key)
        raise
    return export, pdf


def export_by_document_id(document_id: str) -> ReportExport | None:
    """Return the export with this document id (case and spaces forgiven), if any."""
    wanted = document_id.strip().upper()
    if not DOCUMENT_ID_RE.fullmatch(wanted):
        return None
    return db.session.scalar(sa.select(ReportExport).where(ReportExport.document_id == wanted))


@dataclass(frozen=True)
class Verification:
    """The outcome of checking a file or id against the recorded exports."""

    genuine: bool
    export: ReportExport | None
    sha256: str | None = None
    claimed_id: str | None = None  # a document id found inside an altered file


def verify_file(data: bytes) -> Verification:
    """Say whether data is, byte for byte, a PDF this portal exported."""
    digest = hashlib.sha256(data).hexdigest()
    export = db.session.scalar(
        sa.select(ReportExport).where(ReportExport.sha256 == digest).limit(1)
    )
    if export is not None:
        return Verification(True, export, digest)
    found = DOCUMENT_ID_RE.search(data.decode("latin-1"))
    return Verification(False, None, digest, found.group(0) if found else None)


def verify_id(document_id: str) -> Verification:
    """Look a document id up in the recorded exports."""
    export = export_by_document_id(document_id)
    return Verification(export is not None, export, export.sha256 if export else None)
