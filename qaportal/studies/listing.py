"""The study list: search, filters and sorting over the studies a user may see.

Searching by patient name, MRN or accession matches the real values only on studies the user
sees in full without a blind role (their own, a full non-blind share, or any for QA managers and
administrators); elsewhere it matches the pseudonym the user is shown, so a search never
confirms who a de-identified or blind study belongs to. Date filters likewise compare the date
the user is shown (shifted under de-identification).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from qaportal.models import OpinionRequest, OriginalRead, ReviewAssignment, Study, StudyAccess, User
from qaportal.paging import Key
from qaportal.permissions import BLIND_SOURCES
from qaportal.studies.queries import visible_studies

MODALITIES = ("CR", "CT", "DX", "MG", "MR", "NM", "OT", "PT", "RF", "US", "XA")
STATUSES = {
    "": "Any",
    "opinion": "Has a second opinion request",
    "review": "In peer review",
    "none": "Neither",
}
SORTS = {  # each ends with the id: a total order, so pages by keyset (qaportal.paging)
    "uploaded_desc": ("Uploaded, newest first",
                      (Key(Study.created_at, desc=True), Key(Study.id, desc=True))),
    "uploaded_asc": ("Uploaded, oldest first", (Key(Study.created_at), Key(Study.id))),
    "date_desc": ("Study date, newest first",
                  (Key(Study.study_date, desc=True, nullable=True), Key(Study.id, desc=True))),
    "date_asc": ("Study date, oldest first",
                 (Key(Study.study_date, nullable=True), Key(Study.id))),
    "modality": ("Modality", (Key(Study.modalities), Key(Study.created_at, desc=True),
                              Key(Study.id, desc=True))),
}
DEFAULT_SORT = "uploaded_desc"


@dataclass(frozen=True)
class StudyFilter:
    """What the user asked the list for (the text is patient data: never put it in a URL)."""

    text: str = ""
    modality: str = ""
    date_from: date | None = None
    date_to: date | None = None
    status: str = ""
    sort: str = DEFAULT_SORT

    @property
    def active(self) -> bool:
        return bool(self.text or self.modality or self.date_from or self.date_to or self.status)

    def audit_details(self) -> dict:
        """Which filters were used, without the searched text itself."""
        return {"searched": bool(self.text), "modality": self.modality or None,
                "date_from": self.date_from.isoformat() if self.date_from else None,
                "date_to": self.date_to.isoformat() if self.date_to else None,
                "status": self.status or None, "sort": self.sort}


class _PlusDays(FunctionElement):
    """date + n days, written for each database."""

    inherit_cache = True
    type = sa.Date()


@compiles(_PlusDays)
def _plus_days_default(element, compiler, **kw):
    col, days = list(element.clauses)
    return f"({compiler.process(col, **kw)} + {compiler.process(days, **kw)})"


@compiles(_PlusDays, "sqlite")
def _plus_days_sqlite(element, compiler, **kw):
    col, days = list(element.clauses)
    return (f"date({compiler.process(col, **kw)}, "
            f"printf('%+d days', {compiler.process(days, **kw)}))")


def _full_and_sighted(user: User) -> tuple[ColumnElement, ColumnElement]:
    """Return (seen in full, identity searchable) conditions on Study for this user."""
    if user.has_role("qa_manager", "admin"):
        return sa.true(), sa.true()
    full_grant = sa.select(StudyAccess.study_id).where(
        StudyAccess.user_id == user.id, StudyAccess.revoked_at.is_(None),
        StudyAccess.mode == "full")
    ever_blind = sa.select(StudyAccess.study_id).where(
        StudyAccess.user_id == user.id, StudyAccess.source_type.in_(sorted(BLIND_SOURCES)))
    full = sa.or_(Study.owner_id == user.id, Study.id.in_(full_grant))
    sighted = sa.or_(Study.owner_id == user.id,
                     sa.and_(Study.id.in_(full_grant), Study.id.not_in(ever_blind)))
    return full, sighted


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


def _text_condition(text: str, sighted: ColumnElement) -> ColumnElement:
    pattern = _like(text)
    dicom_name = _like(text.replace(" ", "^"))  # "Doe Peter" finds "Doe^Peter"

    def has(col, pat=pattern):
        return sa.func.lower(col).like(pat, escape="\\")

    real = sa.or_(has(Study.patient_name), has(Study.patient_name, dicom_name),
                  has(Study.patient_id), has(Study.accession_number), has(Study.pseudonym))
    return sa.or_(sa.and_(sighted, real), has(Study.pseudonym))


def _modality_condition(modality: str) -> ColumnElement:
    col = Study.modalities
    return sa.or_(col == modality, col.like(f"{modality}/%"), col.like(f"%/{modality}"),
                  col.like(f"%/{modality}/%"))


def _date_condition(flt: StudyFilter, full: ColumnElement) -> ColumnElement:
    shown = sa.case((full, Study.study_date),
                    else_=_PlusDays(Study.study_date, Study.deid_date_shift_days))
    conds = [Study.study_date.is_not(None)]
    if flt.date_from:
        conds.append(shown >= flt.date_from)
    if flt.date_to:
        conds.append(shown <= flt.date_to)
    return sa.and_(*conds)


def _status_condition(status: str) -> ColumnElement:
    has_opinion = sa.exists().where(OpinionRequest.study_id == Study.id)
    in_review = sa.exists().where(
        OriginalRead.study_id == Study.id, ReviewAssignment.read_id == OriginalRead.id,
        ReviewAssignment.status == "assigned")
    if status == "opinion":
        return has_opinion
    if status == "review":
        return in_review
    return sa.and_(~has_opinion, ~in_review)


def filtered_studies(user: User, flt: StudyFilter) -> sa.Select:
    """Return the select of visible studies matching the filter, in the asked order."""
    stmt = visible_studies(user)
    full, sighted = _full_and_sighted(user)
    if flt.text:
        stmt = stmt.where(_text_condition(flt.text, sighted))
    if flt.modality:
        stmt = stmt.where(_modality_condition(flt.modality))
    if flt.date_from or flt.date_to:
        stmt = stmt.where(_date_condition(flt, full))
    if flt.status in STATUSES and flt.status:
        stmt = stmt.where(_status_condition(flt.status))
    return stmt.order_by(*[k.order() for k in sort_keys(flt)])


def sort_keys(flt: StudyFilter) -> tuple[Key, ...]:
    """The list's sort keys for the filter's sort (the default when unknown)."""
    return SORTS.get(flt.sort, SORTS[DEFAULT_SORT])[1]
