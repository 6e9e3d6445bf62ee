"""FHIR R4 endpoint: POST /fhir/DiagnosticReport records a read, as the HL7 listener does.

The caller is the owner: the read is matched within the caller's own studies. Callers are
machines with a personal API token holding the write scope (no CSRF check: no cookie), or
a signed-in browser session sending the CSRF token in an X-CSRFToken header. Errors are
answered with an OperationOutcome (application/fhir+json).
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, abort, current_app, g, request, url_for
from flask_login import current_user
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

from qaportal import audit
from qaportal.auth.tokens import audited_in_transaction, record_use
from qaportal.extensions import csrf, db
from qaportal.feeds import fhir_report, reads
from qaportal.models import IncomingRead
from qaportal.permissions import role_required

bp = Blueprint("fhir", __name__, url_prefix="/fhir")
csrf.exempt(bp)
FHIR_JSON = "application/fhir+json"


def outcome(status: int, issues: list[str], code: str = "invalid",
            severity: str = "error", **headers) -> Response:
    body = {"resourceType": "OperationOutcome",
            "issue": [{"severity": severity, "code": code, "diagnostics": text}
                      for text in issues]}
    response = Response(json.dumps(body), status=status, mimetype=FHIR_JSON)
    response.headers.update(headers)
    return response


def _http_error(exc: HTTPException):
    code = {401: "login", 403: "forbidden", 404: "not-found", 413: "too-costly"}.get(
        exc.code or 500, "processing")
    return outcome(exc.code or 500, [exc.description or exc.name], code)


# Per status code: the app's own handlers by code would otherwise answer with a page.
for _status in (400, 401, 403, 404, 405, 413, 415, 422, 500):
    bp.register_error_handler(_status, _http_error)


@bp.before_request
def check_csrf_and_scope():
    token = g.get("api_token")
    reading = request.method in ("GET", "HEAD")
    if token is None:
        if not reading and current_app.config.get("WTF_CSRF_ENABLED", True):
            csrf.protect()
    elif (scope := "read" if reading else "write") not in token.scope_set:
        abort(403, description=f"this API token lacks the {scope} scope")


@bp.route("/DiagnosticReport", methods=["POST"])
@audited_in_transaction
@role_required("radiologist")
def diagnostic_report_create():
    """Receive a DiagnosticReport as the original read of one of the caller's studies."""
    mimetype = (request.mimetype or "").lower()
    if mimetype not in (FHIR_JSON, "application/json"):
        abort(415, description="send application/fhir+json")
    try:
        body = json.loads(request.get_data(cache=False) or b"null")
    except ValueError:
        return outcome(400, ["the body is not JSON"], "structure")
    owner = current_user._get_current_object()
    try:
        msg = fhir_report.to_read(fhir_report.validate(body))
        reads.check(msg)
    except fhir_report.ReportInvalid as exc:
        _refused(owner, exc.status)
        return outcome(exc.status, exc.issues, exc.code)
    except reads.ReadRejected as exc:
        _refused(owner, 422)
        return outcome(422, [str(exc)], "required")
    for attempt in (1, 2):
        row = reads.find_duplicate(msg, owner)
        status = 200
        if row is not None:
            audit.record("feeds.read_duplicate", row, actor=owner, source="fhir")
        else:
            try:
                row = reads.receive(msg, owner)
                status = 201
            except IntegrityError:
                db.session.rollback()
                if attempt == 2:
                    raise
                continue
        record_use()
        db.session.commit()
        break
    if row.status in ("waiting_images", "ordered"):
        reads.retry_waiting(row.id)
    location = url_for("fhir.diagnostic_report_read", read_id=row.id)
    if row.status == "refused":
        return outcome(422, [row.error or "the read was refused"], "business-rule",
                       Location=location)
    body = {**body, "id": str(row.id)}
    response = Response(json.dumps(body), status=status, mimetype=FHIR_JSON)
    response.headers["Location"] = location
    response.headers["X-QAPortal-Read-Status"] = row.status
    return response


@bp.route("/DiagnosticReport/<int:read_id>")
@audited_in_transaction
@role_required("radiologist")
def diagnostic_report_read(read_id: int):
    """The report as received, with what became of it; only its sender (the owner) reads it:
    another caller gets 404, as for an id that does not exist."""
    owner = current_user._get_current_object()
    row = db.session.get(IncomingRead, read_id)
    if row is None or row.owner_id != owner.id or row.source != "fhir" or row.kind != "report":
        abort(404, description="no such DiagnosticReport")
    audit.record("feeds.read_viewed", row, actor=owner, source="fhir")
    record_use()
    body = json.dumps(fhir_report.as_resource(row))
    db.session.commit()
    response = Response(body, mimetype=FHIR_JSON)
    response.headers["X-QAPortal-Read-Status"] = row.status
    return response


def _refused(owner, status: int) -> None:
    """Audit a refused body (no content: it may carry patient data), in the token's use."""
    db.session.rollback()
    audit.record("feeds.fhir_refused", None, actor=owner, status=status)
    record_use()
    db.session.commit()
