"""FHIR R4 DiagnosticReport -> a read: validation (fhir.resources, R4B models) and mapping.

R4B's DiagnosticReport is R4's for every element used here. Which element gives what is
listed in docs/feeds-reads.md.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime

from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from pydantic import ValidationError

from qaportal.feeds.reads import ReadMessage

STATUSES = {"final": "F", "amended": "C", "corrected": "C", "preliminary": "P"}
ACCESSION_TYPE = "ACSN"  # HL7 v2 table 0203 identifier type "Accession ID"
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


class ReportInvalid(ValueError):
    """A body that is not a valid DiagnosticReport (400) or lacks what a read needs (422)."""

    def __init__(self, status: int, issues: list[str], code: str = "invalid"):
        super().__init__("; ".join(issues))
        self.status, self.issues, self.code = status, issues, code


def validate(body) -> DiagnosticReport:
    """Return the body as a DiagnosticReport, or raise ReportInvalid (400) saying where."""
    if not isinstance(body, dict) or body.get("resourceType") != "DiagnosticReport":
        raise ReportInvalid(400, ["the body must be a FHIR DiagnosticReport resource"],
                            "structure")
    try:
        return DiagnosticReport.model_validate(body)
    except ValidationError as exc:
        issues = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ReportInvalid(400, issues[:20] or ["invalid resource"], "structure") from None


def _contained(report: DiagnosticReport) -> dict[str, object]:
    return {f"#{r.id}": r for r in (report.contained or []) if getattr(r, "id", None)}


def _target(ref, contained: dict):
    """Return (identifiers, display, contained resource) of a Reference."""
    if ref is None:
        return [], "", None
    res = contained.get(ref.reference or "") if ref.reference else None
    ids = [ref.identifier] if ref.identifier else []
    if res is not None:
        ids += list(getattr(res, "identifier", None) or [])
    return ids, ref.display or "", res


def _is_accession(identifier) -> bool:
    codings = (identifier.type.coding or []) if identifier.type else []
    return any(c.code == ACCESSION_TYPE for c in codings)


def _uid(identifier) -> str:
    value = (identifier.value or "").strip()
    if value.startswith("urn:oid:"):
        return value[len("urn:oid:"):]
    return value if identifier.system == "urn:dicom:uid" else ""


def to_read(report: DiagnosticReport) -> ReadMessage:
    """Map a validated DiagnosticReport to a read; raise ReportInvalid (422) when it lacks
    what a read needs."""
    problems: list[str] = []
    contained = _contained(report)
    status = STATUSES.get(report.status or "")
    if status is None:
        problems.append("status: only final, amended, corrected or preliminary reports")
    based_ids: list = []
    for ref in report.basedOn or []:
        based_ids += _target(ref, contained)[0]
    study_ids: list = []
    for ref in report.imagingStudy or []:
        study_ids += _target(ref, contained)[0]
    everything = list(report.identifier or []) + based_ids + study_ids
    accession = next((i.value for i in everything if _is_accession(i) and i.value), None) \
        or next((i.value for i in based_ids if i.value and not _uid(i)), "")
    study_uid = next((u for u in (_uid(i) for i in study_ids) if u), "")
    if study_uid and (len(study_uid) > 64 or not _UID.fullmatch(study_uid)):
        problems.append("imagingStudy: the identifier is not a valid Study Instance UID")
    reader_id, reader_name = "", ""
    for ref in report.resultsInterpreter or []:
        ids, display, res = _target(ref, contained)
        reader_id = next((i.value for i in ids if i.value), "")
        reader_name = display or _practitioner_name(res)
        if reader_id:
            break
    text = (report.conclusion or "").strip() or _presented_text(report, problems)
    message_key = next((i for i in report.identifier or [] if i.value and not _is_accession(i)),
                       None)
    msg = ReadMessage(
        source="fhir", message_id=message_key.value[:64] if message_key else None,
        sending_application=(message_key.system or "")[:64] if message_key else "",
        accession_number=(accession or "").strip(), study_uid=study_uid,
        reader_identifier=reader_id.strip(), reader_name=reader_name, report_text=text,
        result_status=status or "F", finalized_at=_issued(report.issued),
    )
    if not msg.accession_number and not msg.study_uid:
        problems.append("no accession number (identifier or basedOn with type ACSN) or "
                        "ImagingStudy Study Instance UID (urn:oid:)")
    if not msg.reader_identifier:
        problems.append("resultsInterpreter: a Practitioner reference with an identifier "
                        "is required")
    if not msg.report_text:
        problems.append("conclusion or a text/plain presentedForm is required")
    if status in ("F", "C") and report.issued is None:
        problems.append("issued: the time the report was made final is required")
    if problems:
        raise ReportInvalid(422, problems, "required")
    return msg


def _practitioner_name(res) -> str:
    names = getattr(res, "name", None) or []
    if not names:
        return ""
    n = names[0]
    return (n.text or " ".join([*(n.given or []), n.family or ""])).strip()


def _presented_text(report: DiagnosticReport, problems: list[str]) -> str:
    for att in report.presentedForm or []:
        if (att.contentType or "").split(";")[0].strip() == "text/plain" and att.data:
            try:
                raw = att.data if isinstance(att.data, bytes) else base64.b64decode(att.data)
                return raw.decode("utf-8").strip()
            except (binascii.Error, UnicodeDecodeError, ValueError):
                problems.append("presentedForm: text/plain data is not base64 UTF-8 text")
    return ""


def _issued(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# FHIR DiagnosticReport.status of what the portal kept (HL7-style result status).
_STATUS_OUT = {"F": "final", "C": "corrected", "P": "preliminary"}


def as_resource(row) -> dict:
    """Return the received read as a DiagnosticReport: its identifiers, status, issued time,
    interpreter and text as kept (the resource a 201 Location names)."""
    identifiers = []
    if row.message_id:
        entry = {"value": row.message_id}
        if row.sending_application:
            entry["system"] = row.sending_application
        identifiers.append(entry)
    if row.accession_number:
        identifiers.append({"type": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
            "code": ACCESSION_TYPE}]}, "value": row.accession_number})
    body: dict = {"resourceType": "DiagnosticReport", "id": str(row.id),
                  "status": _STATUS_OUT.get(row.result_status, "unknown"),
                  "code": {"text": "Imaging report"}}
    if identifiers:
        body["identifier"] = identifiers
    if row.finalized_at is not None:
        body["issued"] = row.finalized_at.isoformat()
    if row.reader_identifier or row.reader_name:
        interpreter: dict = {}
        if row.reader_identifier:
            interpreter["identifier"] = {"value": row.reader_identifier}
        if row.reader_name:
            interpreter["display"] = row.reader_name
        body["resultsInterpreter"] = [interpreter]
    if row.study_uid:
        body["imagingStudy"] = [{"identifier": {"system": "urn:dicom:uid",
                                                "value": f"urn:oid:{row.study_uid}"}}]
    if row.report_text:
        body["conclusion"] = row.report_text
    return body
