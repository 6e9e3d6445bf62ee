"""Blinding across roles: who holds a blind role on a study, who knows who read it.

One rule, asked here by every grant and every offer:

* A *blind role* on a study is a peer review of its read (sampled or ad hoc), a seat on
  the committee of a discrepancy case about it, or attendance at a conference that
  teaches it, or any access grant from those workflows (`BLIND_SOURCES`), revoked or not.
* A *non-blind relation* to a study is: its uploader (also someone whose own upload of
  the same images was attached to it), its reader (the radiologist of `OriginalRead`,
  who signed the report) and whoever entered that read, the requester of a second
  opinion on it, a consultant who took or signed one, and any other access grant
  (a share), revoked or not.
* Whoever holds or held a blind role is never offered, notified of or given a non-blind
  role (opinion consultant, share). Whoever has a non-blind relation is never sampled or
  assigned as its peer reviewer or committee member (teaching conferences are anonymous
  and may include the reader). `studies.access.grant_access` re-checks this at every grant.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.id_lists import in_ids
from qaportal.models import (
    CommitteeMember,
    ConferenceAttendee,
    ConferenceCase,
    DiscrepancyCase,
    Opinion,
    OpinionRequest,
    OriginalRead,
    Review,
    ReviewAssignment,
    Study,
    StudyAccess,
    TeachingCase,
)
from qaportal.permissions import BLIND_SOURCES  # grants from blind workflows

# Blind roles that judge the read: they need someone who does not know its reader.
INDEPENDENT_SOURCES = frozenset({"review_assignment", "committee_review"})
# A user's own upload of images already stored: they hold the files, nobody shares them.
OWN_COPY_SOURCES = frozenset({"upload_batch"})

BLIND_HOLDER_REASON = "reviews this study blind (peer review, committee or teaching case)"
KNOWS_READER_REASON = ("read, uploaded, requested or gave an opinion on this study, so "
                       "cannot review it blind")


class RoleConflict(PermissionError):
    """A grant would break blinding; the message says why."""


def _blind_selects() -> list[tuple[sa.Select, sa.ColumnElement, sa.ColumnElement]]:
    """Return (select of (study_id, user_id), study column, user column) per blind role."""
    read = OriginalRead
    return [
        (sa.select(StudyAccess.study_id, StudyAccess.user_id)
         .where(StudyAccess.source_type.in_(sorted(BLIND_SOURCES))),
         StudyAccess.study_id, StudyAccess.user_id),
        (sa.select(read.study_id, ReviewAssignment.reviewer_id)
         .join(read, read.id == ReviewAssignment.read_id),
         read.study_id, ReviewAssignment.reviewer_id),
        (sa.select(read.study_id, CommitteeMember.user_id)
         .join(DiscrepancyCase, DiscrepancyCase.id == CommitteeMember.case_id)
         .join(Review, Review.id == DiscrepancyCase.review_id)
         .join(ReviewAssignment, ReviewAssignment.id == Review.assignment_id)
         .join(read, read.id == ReviewAssignment.read_id),
         read.study_id, CommitteeMember.user_id),
        (sa.select(TeachingCase.study_id, ConferenceAttendee.user_id)
         .join(ConferenceCase, ConferenceCase.conference_id == ConferenceAttendee.conference_id)
         .join(TeachingCase, TeachingCase.id == ConferenceCase.teaching_case_id),
         TeachingCase.study_id, ConferenceAttendee.user_id),
    ]


def _non_blind_selects(uploads: bool = True
                       ) -> list[tuple[sa.Select, sa.ColumnElement, sa.ColumnElement]]:
    """Return (select of (study_id, user_id), study column, user column) per relation;
    uploads=False leaves out the uploader, who entered the read, and own-copy grants."""
    req = OpinionRequest
    grants = StudyAccess.source_type.not_in(sorted(BLIND_SOURCES | (set() if uploads
                                                                   else OWN_COPY_SOURCES)))
    return [
        *([(sa.select(Study.id, Study.owner_id), Study.id, Study.owner_id),
           (sa.select(OriginalRead.study_id, OriginalRead.entered_by_id),
            OriginalRead.study_id, OriginalRead.entered_by_id)] if uploads else []),
        (sa.select(OriginalRead.study_id, OriginalRead.reader_id),
         OriginalRead.study_id, OriginalRead.reader_id),
        (sa.select(req.study_id, req.requester_id), req.study_id, req.requester_id),
        (sa.select(req.study_id, req.consultant_id).where(req.accepted_at.is_not(None)),
         req.study_id, req.consultant_id),
        (sa.select(req.study_id, Opinion.author_id).join(req, req.id == Opinion.request_id),
         req.study_id, Opinion.author_id),
        (sa.select(StudyAccess.study_id, StudyAccess.user_id).where(grants),
         StudyAccess.study_id, StudyAccess.user_id),
    ]


def _pairs(selects, study_ids: Iterable[int], user_id: int | None) -> set[tuple[int, int]]:
    ids = sorted(set(study_ids))
    if not ids:
        return set()
    parts = []
    for stmt, study_col, user_col in selects:
        stmt = stmt.where(in_ids(study_col, ids), user_col.is_not(None))
        parts.append(stmt.where(user_col == user_id) if user_id is not None else stmt)
    return {(int(s), int(u)) for s, u in db.session.execute(sa.union(*parts))}


def blind_pairs(study_ids: Iterable[int], user_id: int | None = None) -> set[tuple[int, int]]:
    """Return (study id, user id) for everyone who holds or held a blind role on the studies."""
    return _pairs(_blind_selects(), study_ids, user_id)


def non_blind_pairs(study_ids: Iterable[int],
                    user_id: int | None = None) -> set[tuple[int, int]]:
    """Return (study id, user id) for everyone with a non-blind relation to the studies."""
    return _pairs(_non_blind_selects(), study_ids, user_id)


def blind_holder_ids(study_id: int) -> set[int]:
    """Return the users who hold or held a blind role on the study."""
    return {u for _, u in blind_pairs([study_id])}


def knows_reader_ids(study_id: int) -> set[int]:
    """Return the users with a non-blind relation to the study."""
    return {u for _, u in non_blind_pairs([study_id])}


def held_blind_role(user_id: int, study_id: int) -> bool:
    """Return True when the user holds or held a blind role on the study."""
    from qaportal.access_prefetch import holds_blind_role

    held = holds_blind_role(user_id, study_id)  # known already on a page listing studies
    return bool(blind_pairs([study_id], user_id)) if held is None else held


def has_non_blind_relation(user_id: int, study_id: int) -> bool:
    """Return True when the user read, uploaded, requested, consulted on or was shared it."""
    return bool(non_blind_pairs([study_id], user_id))


def _adhoc_by_uploader(user_id: int, study: Study, source: tuple[str, int]) -> bool:
    """Return True for the uploader's own ad-hoc review: an open look at a read they came
    across, counted apart from the blind sample; the uploader entered the read and is never
    blinded, so nobody is unblinded. Not when they also read it, asked for or gave an
    opinion on it, or were shared it."""
    if source[0] != "review_assignment" or user_id != study.owner_id:
        return False
    kind = db.session.scalar(sa.select(ReviewAssignment.source)
                             .where(ReviewAssignment.id == source[1]))
    return kind == "adhoc" and not _pairs(_non_blind_selects(uploads=False), [study.id],
                                          user_id)


def grant_refusal(user_id: int, study: Study, source: tuple[str, int]) -> str | None:
    """Return why a grant from this workflow source would break blinding, or None."""
    source_type = source[0]
    if source_type in INDEPENDENT_SOURCES:
        if (non_blind_pairs([study.id], user_id)
                and not _adhoc_by_uploader(user_id, study, source)):
            return KNOWS_READER_REASON
    elif source_type not in BLIND_SOURCES | OWN_COPY_SOURCES:
        if held_blind_role(user_id, study.id):
            return BLIND_HOLDER_REASON
    return None


def adhoc_refusal(user_id: int, study: Study) -> bool:
    """Return True when the user may not open an ad-hoc review of the study's read."""
    if user_id == study.owner_id:
        return bool(_pairs(_non_blind_selects(uploads=False), [study.id], user_id))
    return has_non_blind_relation(user_id, study.id)
