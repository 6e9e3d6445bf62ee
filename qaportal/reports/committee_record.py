"""The "Committee record" report: one discrepancy case's adjudication, for the QA file.

Made by QA managers (from the QA case page, `qa.case_record`, or the reports page) and on
the command line. It holds what the QA case page shows a QA manager, who sees reader,
reviewer and committee by name: the case by its internal numbers (no patient name, id,
birth date or accession; the study by its portal number, modality and body part), the
review's score and category, the committee and every round's votes (member, score,
comment, time), the decision, the feedback to the reader and the reader's response, the
case's history (its status events and the audit events on the case) and the reviewer's
viewer marks with the key images drawn. Free text goes through the study's patient
scrubber, so an identifier typed into a comment does not reach the record. The
peer-review confidentiality statement is always on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from flask import has_request_context
from flask_login import current_user
from wtforms import SelectField
from wtforms.validators import InputRequired, NumberRange

from qaportal import audit
from qaportal.extensions import db
from qaportal.forms_choices import choices
from qaportal.marks.display import qa_marks
from qaportal.models import AuditEvent, DiscrepancyCase, User
from qaportal.models.discrepancy import STATUS_LABELS
from qaportal.models.review import CATEGORY_LABELS, SCORE_LABELS
from qaportal.reports.registry import ReportDefinition, ReportForm, register
from qaportal.studies.redact import patient_scrubber

MAX_CHOICES = 300
AUDIT_ROWS = 60
EVENT_LABELS = {
    "opened": "Case opened", "committee_assigned": "Committee assigned",
    "voted": "Member scored", "decided": "Decision recorded",
    "acknowledged": "Reader acknowledged", "disputed": "Reader disputed",
    "closed": "Case closed", "teaching": "Made a teaching case",
}


def may_export(user: User | None) -> bool:
    """QA managers (they see every case with its names); the command line too."""
    return user is None or user.has_role("qa_manager")


def _choice_label(case: DiscrepancyCase) -> str:
    # Internal numbers and states only: no patient, no names.
    return (f"Case #{case.id} · review #{case.review_id} · {STATUS_LABELS[case.status]}"
            f" · opened {case.opened_at:%Y-%m-%d}")


class CommitteeRecordForm(ReportForm):
    """Which case; the confidentiality statement is always printed."""

    case = SelectField(
        "Discrepancy case", coerce=int, validate_choice=False,
        validators=[InputRequired(message="Choose a case."),
                    NumberRange(min=1, message="Choose a case.")],
        description=f"The newest {MAX_CHOICES} cases; the QA case page exports any case.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        user = (current_user._get_current_object()
                if has_request_context() and current_user.is_authenticated else None)
        cases = (db.session.scalars(sa.select(DiscrepancyCase)
                                    .order_by(DiscrepancyCase.id.desc()).limit(MAX_CHOICES))
                 if user is not None and may_export(user) else [])
        self.case.choices = choices((c.id, _choice_label(c)) for c in cases)

    def prefill(self, args: Any, user: User) -> None:
        """Preselect ?case=ID."""
        try:
            self.case.data = int(args.get("case", ""))
        except ValueError:
            return

    def params(self) -> dict[str, Any]:
        return {**super().params(), "confidential": True}


def allowed(user: User | None, params: dict[str, Any]) -> bool:
    """QA managers, for a case that exists (the command line too)."""
    if user is None:
        return True
    case_id = params.get("case")
    return may_export(user) and bool(case_id) and db.session.get(DiscrepancyCase,
                                                                  case_id) is not None


# --- the content -----------------------------------------------------------------------------

@dataclass(frozen=True)
class VoteRow:
    """One member's score in one round."""

    member: str
    score: str
    score_label: str
    comment: str
    voted_at: datetime


@dataclass(frozen=True)
class Round:
    """A round of independent scoring (a dispute starts another)."""

    number: int
    votes: list[VoteRow]
    waiting: list[str]  # members who have not scored (the current round only)


@dataclass(frozen=True)
class Event:
    """One line of the case's history."""

    at: datetime
    what: str
    who: str
    note: str


def rounds(case: DiscrepancyCase, scrub) -> list[Round]:
    """Every round's votes, oldest first; the members still to score in the current one."""
    out = []
    for number in range(1, case.round + 1):
        votes = [v for v in case.votes if v.round == number]
        rows = [VoteRow(v.user.full_name, v.score, SCORE_LABELS.get(v.score, v.score),
                        scrub(v.comment), v.voted_at)
                for v in sorted(votes, key=lambda v: (v.voted_at, v.id))]
        voted = {v.user_id for v in votes}
        waiting = ([m.user.full_name for m in case.members if m.user_id not in voted]
                   if number == case.round and case.status in ("open", "committee") else [])
        if rows or waiting:
            out.append(Round(number, rows, waiting))
    return out


def history(case: DiscrepancyCase, scrub) -> list[Event]:
    """The case's status events (qaportal.qa.cases writes one per step), oldest first."""
    ids = {e.by_id for e in case.events if e.by_id}
    names = ({u.id: u.full_name for u in db.session.scalars(
        sa.select(User).where(User.id.in_(ids)))} if ids else {})
    return [Event(e.at, EVENT_LABELS.get(e.event, e.event.replace("_", " ")),
                  names.get(e.by_id, "system" if e.by_id is None else ""), scrub(e.note))
            for e in sorted(case.events, key=lambda e: (e.at, e.id))]


@dataclass(frozen=True)
class AuditLines:
    """The audit events recorded on the case, the newest AUDIT_ROWS."""

    events: list[AuditEvent]
    total: int
    chain: Any


def audit_lines(case: DiscrepancyCase) -> AuditLines:
    """Return the audit events on the case object, oldest first, and the chain's verdict."""
    on_case = sa.and_(AuditEvent.object_type == DiscrepancyCase.__tablename__,
                      AuditEvent.object_id == str(case.id))
    total = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                              .where(on_case)) or 0
    newest = db.session.scalars(sa.select(AuditEvent).where(on_case)
                                .order_by(AuditEvent.seq.desc()).limit(AUDIT_ROWS)).all()
    return AuditLines(list(reversed(newest)), total, audit.verify(incremental=True))


def build_context(params: dict[str, Any], user: User | None) -> dict[str, Any]:
    """Gather everything the record prints about one case."""
    case = db.session.get(DiscrepancyCase, params["case"])
    review = case.review
    assignment = review.assignment
    read = assignment.read
    study = read.study
    scrub = patient_scrubber(study)
    eff = review.effective
    decided_by = db.session.get(User, case.decided_by_id) if case.decided_by_id else None
    return {
        "title": "Committee record",
        "subtitle": f"Discrepancy case #{case.id}",
        "case": case,
        "status_label": STATUS_LABELS[case.status],
        "study": {"id": study.id, "modalities": study.modalities or "—",
                  "body_part": study.body_part or "",
                  "read_finalized": read.finalized_at},
        "reader_name": read.reader.full_name,
        "reviewer_name": assignment.reviewer.full_name,
        "review": review,
        "effective": eff,
        "score_label": SCORE_LABELS.get(eff.score, eff.score),
        "category_label": CATEGORY_LABELS.get(eff.category, "—") if eff.category else "—",
        "review_comment": scrub(eff.comment),
        "original_score": (review.score, CATEGORY_LABELS.get(review.category, "—")
                           if review.category else "—") if eff.amended else None,
        "members": [(m.user.full_name, m.added_at) for m in case.members],
        "rounds": rounds(case, scrub),
        "final_score_label": SCORE_LABELS.get(case.final_score or "", ""),
        "rationale": scrub(case.rationale),
        "decided_by": decided_by.full_name if decided_by else "",
        "reader_response": scrub(case.reader_response),
        # Each dispute's reason (the response field keeps only the reader's last word).
        "disputes": [(e.at, scrub(e.note)) for e in case.events if e.event == "disputed"],
        "history": history(case, scrub),
        "audit": audit_lines(case),
        "marks": qa_marks(assignment, pdf=True),
        "today": date.today(),
    }


register("committee", ReportDefinition(
    title="Committee record",
    form_class=CommitteeRecordForm,
    build_context=build_context,
    template="pdf/committee_record.html",
    allowed=allowed,
    audience=lambda user: user.has_role("qa_manager"),
    description="One discrepancy case's adjudication: the review's score and category, the "
                "committee's votes in each round, the decision, the feedback and the "
                "reader's response, the history and the reviewer's viewer marks.",
    confidential_default=True,
))
