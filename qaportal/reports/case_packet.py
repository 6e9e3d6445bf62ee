"""The "Case packet" report: one second-opinion request, for an insurance-coverage review.

Study metadata (identified or de-identified, chosen at export), question and payer's
criteria, the original read, the signed opinion and addenda with the signer's licence,
the timeline and turnaround, key images, the stored images' SHA-256 values and an
excerpt of the audit trail. The form stores only the request id and the choices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from flask import has_request_context
from flask_login import current_user
from wtforms import BooleanField, SelectField
from wtforms.validators import InputRequired, NumberRange

from qaportal.extensions import db
from qaportal.forms_choices import choices
from qaportal.marks.display import marks_of
from qaportal.marks.display import present as present_marks
from qaportal.models import OpinionRequest, Study, User
from qaportal.models.opinion import (
    AGREEMENT_LABELS,
    COVERAGE_LABELS,
    PRIORITY_LABELS,
    REQUEST_TYPE_LABELS,
)
from qaportal.opinions.sla import turnaround_minutes
from qaportal.permissions import is_blind_access, study_access_mode
from qaportal.reports.case_evidence import audit_excerpt, integrity, key_images
from qaportal.reports.registry import ReportDefinition, ReportForm, register
from qaportal.studies.presenter import present
from qaportal.studies.redact import patient_scrubber

MAX_CHOICES = 300


def _may_export(user: User, req: OpinionRequest) -> bool:
    return user.has_role("qa_manager", "admin") or user.id == req.requester_id


def _choice_label(req: OpinionRequest) -> str:
    # No patient identifiers: number, type, modality, priority, status, day requested.
    shared = "shared de-identified" if req.deidentified else "shared identified"
    return (f"#{req.id} · {REQUEST_TYPE_LABELS[req.request_type]} · "
            f"{req.study.modalities or 'study'} · {PRIORITY_LABELS[req.priority]} · "
            f"{req.status} · {req.requested_at:%Y-%m-%d} · {shared}")


def exportable_requests(user: User) -> list[OpinionRequest]:
    """Return the requests whose packet the user may export (newest first, capped)."""
    stmt = sa.select(OpinionRequest).order_by(OpinionRequest.id.desc()).limit(MAX_CHOICES)
    if not user.has_role("qa_manager", "admin"):
        stmt = stmt.where(OpinionRequest.requester_id == user.id)
    return list(db.session.scalars(stmt))


class CasePacketForm(ReportForm):
    """Which request, and whether the packet names the patient."""

    request = SelectField(
        "Second-opinion request", coerce=int, validate_choice=False,
        validators=[InputRequired(message="Choose a request."),
                    NumberRange(min=1, message="Choose a request.")],
        description="Your own requests; QA managers and administrators see every request.",
    )
    deidentified = BooleanField(
        "De-identified: pseudonym instead of the patient's name and ids, shifted dates",
        default=True,
        description="On by default when the request was shared de-identified.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        user = (current_user._get_current_object()
                if has_request_context() and current_user.is_authenticated else None)
        self.request.choices = (choices((r.id, _choice_label(r))
                                        for r in exportable_requests(user))
                                if user is not None else [])

    def prefill(self, args: Any, user: User) -> None:
        """Preselect ?request=ID and default the de-identified box to how it was shared."""
        try:
            req = db.session.get(OpinionRequest, int(args.get("request", "")))
        except ValueError:
            return
        if req is not None and _may_export(user, req):
            self.request.data = req.id
            self.deidentified.data = req.deidentified


def allowed(user: User | None, params: dict[str, Any]) -> bool:
    """QA managers, administrators and the request's requester (the command line too)."""
    if user is None:
        return True
    request_id = params.get("request")
    req = db.session.get(OpinionRequest, request_id) if request_id else None
    return req is not None and _may_export(user, req)


# --- de-identification of free text --------------------------------------------------------

def scrubber(study: Study, deidentified: bool) -> Callable[[str | None], str]:
    """Return a function that removes the study's known patient identifiers from text."""
    if not deidentified:
        return lambda text: text or ""
    return patient_scrubber(study)


# --- the timeline ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Event:
    """One line of the case's timeline."""

    at: datetime
    what: str
    who: str = ""
    note: str = ""


def timeline(req: OpinionRequest, scrub) -> list[Event]:
    """Return what happened to the request, in time order."""
    events = [Event(req.requested_at, "Requested", req.requester.full_name,
                    f"{PRIORITY_LABELS[req.priority]}, due {req.due_at:%Y-%m-%d %H:%M} UTC")]
    for d in req.declines:
        events.append(Event(d.created_at, "Declined", d.user.full_name, scrub(d.reason)))
    if req.accepted_at and req.consultant is not None:
        events.append(Event(req.accepted_at, "Claimed from the pool" if req.pool else "Accepted",
                            req.consultant.full_name))
    if req.first_viewed_at:
        events.append(Event(req.first_viewed_at, "First viewed by the consultant",
                            req.consultant.full_name if req.consultant else ""))
    if req.messages:
        events.append(Event(req.messages[0].created_at, "First message",
                            req.messages[0].author.full_name,
                            f"{len(req.messages)} message(s) in the thread"))
    if req.breached_at:
        events.append(Event(req.breached_at, "Deadline passed (escalated)"))
    op = req.opinion
    if op is not None and op.is_signed:
        events.append(Event(op.signed_at, "Opinion signed", op.signer_name or ""))
        for a in op.addenda:
            events.append(Event(a.signed_at, "Addendum signed", a.signer_name))
    if req.cancelled_at:
        events.append(Event(req.cancelled_at, "Cancelled", req.requester.full_name,
                            scrub(req.cancel_reason)))
    return sorted(events, key=lambda e: e.at)


def _duration(minutes: float) -> str:
    minutes = int(minutes)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = ([f"{days} d"] if days else []) + ([f"{hours} h"] if hours else [])
    return " ".join(parts + [f"{mins} min"] if mins or not parts else parts)


def turnaround(req: OpinionRequest) -> dict[str, Any]:
    """Return the request's turnaround against its priority's target."""
    target = (req.due_at - req.requested_at).total_seconds() / 60
    taken = turnaround_minutes(req)
    return {"minutes": taken, "text": _duration(taken) if taken is not None else None,
            "target_text": _duration(target), "within": taken is not None and taken <= target,
            "priority": PRIORITY_LABELS[req.priority]}


# --- the context ----------------------------------------------------------------------------

def build_context(params: dict[str, Any], user: User | None) -> dict[str, Any]:
    """Gather everything the packet prints about one request."""
    req = db.session.get(OpinionRequest, params["request"])
    study = req.study
    deid = bool(params.get("deidentified"))
    if user is not None and study_access_mode(user, study) != "full":
        deid = True  # who sees the study only de-identified exports it so
    scrub = scrubber(study, deid)
    view = present(study, "deidentified" if deid else "full")
    read = study.read
    show_reader = user is None or not is_blind_access(user, study)
    op = req.opinion if req.opinion is not None and req.opinion.is_signed else None
    images, images_note = key_images(study, deidentified=deid, scrub=scrub)
    return {
        "title": "Second-opinion case packet",
        "subtitle": f"Request #{req.id}",
        "req": req,
        "type_label": REQUEST_TYPE_LABELS[req.request_type],
        "priority_label": PRIORITY_LABELS[req.priority],
        "is_coverage": req.request_type == "coverage_review",
        "deidentified": deid,
        "study": view,
        "study_description": scrub(view.study_description),
        "text": {k: scrub(v) for k, v in {
            "question": req.clinical_question, "history": req.clinical_history,
            "preliminary": req.preliminary_read, "criteria": req.payer_criteria,
            "read": read.report_text if read else "",
            "findings": op.findings if op else "", "impression": op.impression if op else "",
            "recommendations": op.recommendations if op else "",
            "coverage": op.coverage_text if op else "",
        }.items()},
        "read": read,
        "reader_name": (read.reader.full_name if read and show_reader else None),
        "opinion": op,
        "agreement_label": AGREEMENT_LABELS.get(op.agreement) if op else None,
        "coverage_label": COVERAGE_LABELS.get(op.coverage_answer) if op else None,
        "addenda": [(a, scrub(a.text)) for a in op.addenda] if op else [],
        "timeline": timeline(req, scrub),
        "turnaround": turnaround(req),
        "images": images,
        "images_note": images_note,
        "marks": present_marks(marks_of(opinion_request_id=req.id),
                               author_label=lambda u: u.full_name, blind=deid, study=study,
                               pdf=True),
        "integrity": integrity(study, scrub=scrub),
        "audit": audit_excerpt(req),
        "today": date.today(),
    }


register("case", ReportDefinition(
    title="Second-opinion case packet",
    form_class=CasePacketForm,
    build_context=build_context,
    template="pdf/case_packet.html",
    allowed=allowed,
    audience=lambda user: user.has_role("radiologist", "qa_manager", "admin"),
    description="One second-opinion request for an insurance-coverage review: question and "
                "criteria, original read, signed opinion and addenda, timeline, key images, "
                "image hashes and the audit excerpt.",
))
