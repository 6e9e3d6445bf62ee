"""Which studies a DICOMweb caller may reach, and under which UIDs.

A study is served either as stored (the uploader, QA managers, administrators, and full
non-blind grants) or de-identified: for a de-identified grant and for anyone holding or
having held a blind role (reviewer, committee, teaching). A de-identified study exists in
this API only under its remapped UIDs (2.25 + HMAC of the study's key and the original UID,
the mapping of the de-identified zip); its original UIDs answer 404 to that caller.

One caller, one study per StudyInstanceUID: studies are owner-scoped, so two uploaders may
each hold a copy of the same study; a caller who can see both in full is served their own
copy, else the earliest one. QIDO and WADO apply the same rule (`pick`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import abort

from qaportal.blind_roles import blind_pairs
from qaportal.dicom import DeidContext, DeidOption
from qaportal.extensions import db
from qaportal.models import Instance, Series, Study, StudyAccess, User

# What a de-identified copy served here keeps: dates shifted consistently and the patient's
# sex, age, size and weight, as on the pages (the presenter); never device identity.
SERVED_OPTIONS = frozenset({DeidOption.RETAIN_MODIFIED_DATES,
                            DeidOption.RETAIN_PATIENT_CHARACTERISTICS})


@dataclass
class Target:
    """A study as one caller reaches it."""

    study: Study
    mode: str  # "full" or "deidentified": the page access mode (audited)
    deidentified: bool  # served de-identified (a de-identified grant, or a blind role)
    ctx: DeidContext | None = field(default=None, repr=False)

    def uid(self, original: str) -> str:
        """Return the UID this caller sees for an original UID of the study."""
        return self.ctx.new_uid_for(original) if self.ctx is not None else original

    @property
    def study_uid(self) -> str:
        return self.uid(self.study.study_uid)


def deid_context(study: Study) -> DeidContext:
    """Return the context that de-identifies the study's served copies (fixed options)."""
    return DeidContext(secret=bytes.fromhex(study.deid_key), pseudonym=study.pseudonym,
                       pseudonym_id=study.pseudonym, options=SERVED_OPTIONS,
                       date_shift_days=study.deid_date_shift_days)


def _target(study: Study, mode: str, blind: bool) -> Target:
    deid = mode != "full" or blind
    return Target(study, mode, deid, deid_context(study) if deid else None)


def reachable(user: User, studies: Iterable[Study]) -> list[Target]:
    """Return the Target of each study the user may reach (others dropped), in input order.

    Few queries whatever the number of studies: one for the grants, one for blind roles.
    """
    studies = list(studies)
    if not studies:
        return []
    if user.has_role("qa_manager", "admin"):
        return [_target(s, "full", False) for s in studies]
    # The caller's own studies need no grant lookup (the common case of one's own study).
    ids = [s.id for s in studies if s.owner_id != user.id]
    modes: dict[int, set[str]] = {}
    for chunk in _chunks(ids):
        for study_id, mode in db.session.execute(
            sa.select(StudyAccess.study_id, StudyAccess.mode).where(
                StudyAccess.user_id == user.id, StudyAccess.revoked_at.is_(None),
                StudyAccess.study_id.in_(chunk))):
            modes.setdefault(study_id, set()).add(mode)
    granted = [i for i in ids if i in modes]
    blind = {sid for sid, _ in blind_pairs(granted, user.id)} if granted else set()
    out = []
    for s in studies:
        if s.owner_id == user.id:
            out.append(_target(s, "full", False))
        elif s.id in modes:
            mode = "full" if "full" in modes[s.id] else "deidentified"
            out.append(_target(s, mode, s.id in blind))
    return out


def candidate_studies(user: User) -> sa.Select:
    """Return a select of the studies the user may see (the pages' rule)."""
    from qaportal.studies.queries import visible_studies

    return visible_studies(user)


# A copy holding only documents (the SR/KOS a viewer saved into the caller's own copy)
# is served only when no copy with images shares its StudyInstanceUID.
DOCUMENT_MODALITIES = frozenset({"SR", "KO", "PR"})


def documents_only(study: Study) -> bool:
    """Whether the study holds only structured reports, key-object selections or states."""
    kinds = {m for m in (study.modalities or "").split("/") if m}
    return bool(kinds) and kinds <= DOCUMENT_MODALITIES


def pick(targets: Iterable[Target], user: User) -> dict[str, Target]:
    """Return one target per served StudyInstanceUID: a copy with images before one of
    documents only, then the caller's own copy, else the earliest."""
    chosen: dict[str, Target] = {}
    for t in sorted(targets, key=lambda t: (documents_only(t.study),
                                            t.study.owner_id != user.id, t.study.id)):
        chosen.setdefault(t.study_uid, t)
    return chosen


def find_study(user: User, study_uid: str) -> Target:
    """Return the study the caller reaches under study_uid; 404 when there is none."""
    base = candidate_studies(user)
    # Served as stored: the original UID.
    plain = db.session.scalars(base.where(Study.study_uid == study_uid)).all()
    found = [t for t in reachable(user, plain) if not t.deidentified]
    if all(documents_only(t.study) for t in found) and study_uid.startswith("2.25."):
        # Served de-identified: only through a grant (owners and QA see everything as stored).
        granted = db.session.scalars(
            sa.select(Study).join(StudyAccess, StudyAccess.study_id == Study.id).where(
                StudyAccess.user_id == user.id, StudyAccess.revoked_at.is_(None),
                Study.owner_id != user.id).distinct()).all()
        found += [t for t in reachable(user, granted)
                  if t.deidentified and t.study_uid == study_uid]
    chosen = pick(found, user).get(study_uid)
    if chosen is None:
        abort(404)
    return chosen


def find_series(target: Target, series_uid: str) -> Series:
    """Return the study's series served under series_uid; 404 when there is none."""
    for series in target.study.series:
        if target.uid(series.series_uid) == series_uid:
            return series
    abort(404)


def find_instance(target: Target, series: Series, sop_uid: str) -> Instance:
    """Return the series' instance served under sop_uid; 404 when there is none."""
    if target.ctx is None:
        inst = db.session.scalar(sa.select(Instance).where(
            Instance.series_id == series.id, Instance.sop_uid == sop_uid))
        if inst is None:
            abort(404)
        return inst
    # The remapped UID cannot be inverted: hash each of the series' UIDs, reading only the
    # (id, UID) pairs, then load the one instance that matches.
    for inst_id, original in db.session.execute(
            sa.select(Instance.id, Instance.sop_uid).where(Instance.series_id == series.id)):
        if target.uid(original) == sop_uid:
            return db.session.get(Instance, inst_id)
    abort(404)


def _chunks(ids: list[int], size: int = 500) -> Iterable[list[int]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]
