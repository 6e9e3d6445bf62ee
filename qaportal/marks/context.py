"""Which open piece of work a viewer's SR or KOS belongs to.

A draft is an opinion request the user holds as consultant (accepted, not signed) or a
review assignment of theirs not yet submitted. The viewer may name one in the request
header `X-QAPortal-Context: opinion-request:<id>` or `review-assignment:<id>`; without it
the study decides, when the user has exactly one open draft on it. Every comparison is
made on the UIDs the user is served (remapped for a blind reviewer or a de-identified
consultant, qaportal.dicomweb.access), so no original UID is needed from the caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import abort
from sqlalchemy.orm import selectinload

from qaportal.dicom import InstanceHeader
from qaportal.dicom.marks import is_marks_class
from qaportal.dicomweb.access import Target, reachable
from qaportal.dicomweb.stow_ingest import NOT_THE_CONTEXT_STUDY
from qaportal.extensions import db
from qaportal.models import OpinionRequest, OriginalRead, ReviewAssignment, Study, User

HEADER = "X-QAPortal-Context"
_VALUE = re.compile(r"(opinion-request|review-assignment):([0-9]{1,12})")
REVIEWER_ONLY_MARKS = ("not stored: a reviewer stores only structured reports and key "
                       "object selections")


@dataclass
class Draft:
    """An opinion request or a review assignment, as one user reaches its study."""

    kind: str  # "opinion-request" or "review-assignment"
    obj: OpinionRequest | ReviewAssignment
    target: Target | None  # None: the user no longer reaches the study

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.obj.id}"

    @property
    def label(self) -> str:
        return f"{self.kind.replace('-', ' ')} {self.obj.id}"

    @property
    def study(self) -> Study:
        return self.obj.study if self.kind == "opinion-request" else self.obj.read.study

    @property
    def served_study_uid(self) -> str | None:
        return self.target.study_uid if self.target is not None else None

    @property
    def is_open(self) -> bool:
        if self.kind == "opinion-request":
            return self.obj.status == "accepted" and self.obj.signed_at is None
        return self.obj.status == "assigned" and self.obj.review is None

    @property
    def closed_reason(self) -> str:
        if self.kind == "opinion-request":
            state = "signed" if self.obj.signed_at is not None else self.obj.status
            return (f"not linked: {self.label} is {state}; marks are not added to it "
                    "(the instance is stored)")
        return (f"not linked: {self.label} is {self.obj.status}; marks are not added to a "
                "submitted review (the instance is stored)")


def _draft(user: User, kind: str, obj) -> Draft:
    study = obj.study if kind == "opinion-request" else obj.read.study
    targets = reachable(user, [study])
    return Draft(kind, obj, targets[0] if targets else None)


def drafts_of(user: User, served_study_uids: set[str]) -> list[Draft]:
    """Return the user's drafts whose study they are served under one of the UIDs: open
    ones, and signed or submitted ones (to say why a document was not linked).

    A remapped UID (2.25...) can only be checked by remapping each candidate study's own;
    any other UID selects the studies stored under it directly.
    """
    plain = {u for u in served_study_uids if not u.startswith("2.25.")}
    any_remapped = len(plain) < len(served_study_uids)

    def on_study(stmt):
        return stmt if any_remapped else stmt.where(Study.study_uid.in_(plain))

    reqs = db.session.scalars(on_study(
        sa.select(OpinionRequest).join(Study, Study.id == OpinionRequest.study_id).where(
            OpinionRequest.consultant_id == user.id,
            OpinionRequest.status.in_(("accepted", "signed")))
        .options(selectinload(OpinionRequest.study)))).all()
    assigns = db.session.scalars(on_study(
        sa.select(ReviewAssignment)
        .join(OriginalRead, OriginalRead.id == ReviewAssignment.read_id)
        .join(Study, Study.id == OriginalRead.study_id).where(
            ReviewAssignment.reviewer_id == user.id,
            ReviewAssignment.status.in_(("assigned", "submitted")))
        .options(selectinload(ReviewAssignment.read).selectinload(OriginalRead.study),
                 selectinload(ReviewAssignment.review)))).all()
    pairs = [("opinion-request", r, r.study) for r in reqs] + [
        ("review-assignment", a, a.read.study) for a in assigns]
    targets = {t.study.id: t for t in reachable(user, {p[2] for p in pairs})}
    drafts = [Draft(kind, obj, targets.get(study.id)) for kind, obj, study in pairs]
    return [d for d in drafts if d.served_study_uid in served_study_uids]


@dataclass
class StowContext:
    """What one STOW request brings for linking: the caller and the draft it names."""

    user: User
    named: Draft | None = None
    reviewer_only: bool = False  # a reviewer without the radiologist role
    # Plain values for `check`, which runs in the ingest's parsing thread (no ORM there).
    _expected_study: str | None = field(default=None, repr=False)
    _named_label: str = field(default="", repr=False)

    def check(self, header: InstanceHeader) -> str | None:
        """The ingest's extra refusal of one part (runs in the parsing thread: no database)."""
        if self.reviewer_only and not is_marks_class(header.sop_class_uid):
            return REVIEWER_ONLY_MARKS
        if self.named is not None and header.study_uid != self._expected_study:
            return NOT_THE_CONTEXT_STUDY + self._named_label
        return None


def from_request(user: User, value: str | None) -> StowContext:
    """Read and check the context header; 400 when malformed, 409 when it names no draft
    of the caller's (nothing is stored then); 403 for a reviewer without one. A draft of
    theirs that is signed or submitted is kept: the instances are stored, and linking
    refuses with the reason (nothing the viewer sent is lost)."""
    ctx = StowContext(user, reviewer_only=not user.has_role("radiologist"))
    if value is None or not value.strip():
        if ctx.reviewer_only:
            abort(403, description=f"a reviewer stores only the marks of an open review: send "
                                   f"{HEADER}: review-assignment:<id>")
        return ctx
    m = _VALUE.fullmatch(value.strip())
    if m is None:
        abort(400, description=f"{HEADER} must be opinion-request:<id> or "
                               "review-assignment:<id>")
    kind, ident = m.group(1), int(m.group(2))
    if kind == "opinion-request":
        obj = db.session.get(OpinionRequest, ident)
        mine = obj is not None and obj.consultant_id == user.id
    else:
        obj = db.session.get(ReviewAssignment, ident)
        mine = obj is not None and obj.reviewer_id == user.id
    if ctx.reviewer_only and kind != "review-assignment":
        abort(403, description="a reviewer stores only the marks of an open review")
    label = f"{kind.replace('-', ' ')} {ident}"
    if not mine:
        abort(409, description=f"{HEADER} names {label}, which is not a draft of yours")
    draft = _draft(user, kind, obj)
    if draft.target is None:
        abort(409, description=f"{HEADER} names {label}, whose study you no longer reach")
    ctx.named = draft
    ctx._expected_study = draft.served_study_uid
    ctx._named_label = draft.label
    return ctx
