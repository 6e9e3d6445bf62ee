"""Who may do what: role decorators and object-level can_* checks, in one place."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort
from flask_login import current_user

from qaportal.models import User


def role_required(*roles: str) -> Callable:
    """Refuse (403) a view to users holding none of the given roles."""

    def decorator(view: Callable) -> Callable:
        view.required_roles = roles  # read by the permission-matrix test and the nav

        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any):
            if not current_user.is_authenticated:
                abort(401)
            if not current_user.has_role(*roles):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def can_manage_users(user: User) -> bool:
    """Administrators manage accounts, roles and credentials."""
    return user.has_role("admin")


def can_view_audit(user: User) -> bool:
    """QA managers and administrators browse and export the audit log."""
    return user.has_role("qa_manager", "admin")


def can_view_credentials(user: User, subject: User) -> bool:
    """A user sees their own credentials; admins and QA managers see everyone's."""
    return user.id == subject.id or user.has_role("admin", "qa_manager")


def study_access_mode(user: User, study) -> str | None:
    """Return how the user may see a study: 'full', 'deidentified', or None (no access).

    The uploader, QA managers and administrators see it in full; anyone else only
    through an unrevoked grant from a workflow (a full grant wins over a de-identified one).
    """
    import sqlalchemy as sa

    from qaportal.access_prefetch import grant_modes
    from qaportal.extensions import db
    from qaportal.models import StudyAccess

    if user.id == study.owner_id or user.has_role("qa_manager", "admin"):
        return "full"
    modes = grant_modes(user.id, study.id)  # known already on a page listing studies
    if modes is None:
        modes = set(db.session.scalars(sa.select(StudyAccess.mode).where(
            StudyAccess.study_id == study.id,
            StudyAccess.user_id == user.id,
            StudyAccess.revoked_at.is_(None),
        )))
    if not modes:
        return None
    return "full" if "full" in modes else "deidentified"


# Grants from these workflows are blind: the grantee must not learn who read the study
# (the rule across roles is in qaportal/blind_roles.py).
BLIND_SOURCES = frozenset({"review_assignment", "committee_review", "teaching_case"})


def is_blind_access(user: User, study) -> bool:
    """Return True when the user holds or held a blind role on the study (reviewer,
    committee member, teaching-case attendee), whatever other grants exist: a later grant
    never unblinds. The uploader (who entered the read), QA managers and administrators
    are never blinded."""
    from qaportal.blind_roles import held_blind_role

    if user.id == study.owner_id or user.has_role("qa_manager", "admin"):
        return False
    return held_blind_role(user.id, study.id)


def can_see_access_list(user: User, study) -> bool:
    """The uploader, QA managers and administrators see who has access to a study."""
    return user.id == study.owner_id or user.has_role("qa_manager", "admin")


def can_see_blind_grants(user: User) -> bool:
    """Only QA managers see who was given a study for blind review (reviewer, committee,
    teaching attendees) beside who read it; the uploader and admins see only a count."""
    return user.has_role("qa_manager")


def can_view_study(user: User, study) -> bool:
    """A study is visible to its uploader, to users a workflow shared it with, and to QA."""
    return study_access_mode(user, study) is not None


def can_edit_study(user: User, study) -> bool:
    """The uploader edits the clinical notes and the original read; admins may correct them."""
    return user.id == study.owner_id or user.has_role("admin")


def can_correct_read(user: User, study) -> bool:
    """QA managers (and administrators, who may correct a study) correct a final read."""
    return user.has_role("qa_manager", "admin")


# --- Second opinions (qaportal/opinions) -----------------------------------------------------

def opinion_request_view(user: User, req) -> str | None:
    """Return how the user may see a request: 'full', 'limited' (deciding whether to take
    it: no patient identity, no study) or None (404)."""
    if user.id == req.requester_id or user.has_role("qa_manager", "admin"):
        return "full"
    if req.consultant_id == user.id:
        return "full" if req.status in ("accepted", "signed") else "limited"
    if can_claim_opinion_request(user, req):
        return "limited"
    return None


def can_view_opinion_request(user: User, req) -> bool:
    """Requester, consultant, eligible pool members while unclaimed, QA managers, admins."""
    return opinion_request_view(user, req) is not None


def can_claim_opinion_request(user: User, req) -> bool:
    """An eligible pool member may claim an open, unclaimed pool request once."""
    from qaportal.opinions.eligibility import request_ineligibility

    return (req.status == "open" and req.consultant_id is None and req.pool is not None
            and not request_ineligibility(user, req)
            and all(d.user_id != user.id for d in req.declines))


def can_write_opinion(user: User, req) -> bool:
    """Only the consultant working on an accepted request writes and signs its opinion."""
    return req.status == "accepted" and req.consultant_id == user.id


def can_message_opinion_request(user: User, req) -> bool:
    """Requester and consultant talk in the request's thread."""
    return (req.consultant_id is not None and req.status != "cancelled"
            and user.id in (req.requester_id, req.consultant_id))


def can_request_opinion(user: User, study) -> bool:
    """A radiologist with full access to a study may ask for a second opinion on it; not one
    who holds it only for blind review (the request form carries the reader's notes)."""
    return (user.has_role("radiologist") and study_access_mode(user, study) == "full"
            and not is_blind_access(user, study))
# Reports (PDF exports)
def can_export_reports(user: User) -> bool:
    """QA managers and administrators open the reports page and make exports."""
    return user.has_role("qa_manager", "admin")


def can_open_report(user: User, definition) -> bool:
    """A report's form is offered to its audience (QA staff unless the report says more)."""
    return definition.audience(user)


def can_download_export(user: User, export) -> bool:
    """An export's file goes to whoever made it, and to QA managers and administrators."""
    return export.created_by_id == user.id or user.has_role("qa_manager", "admin")



# --- Peer review and QA ---------------------------------------------------------

def can_manage_qa(user: User) -> bool:
    """QA managers run sampling, adjudication, peer learning and the statistics."""
    return user.has_role("qa_manager")


def can_work_review(user: User, assignment) -> bool:
    """Only the assigned reviewer opens and scores a review."""
    return assignment.reviewer_id == user.id


def can_score_case(user: User, case) -> bool:
    """Committee members see and score their case."""
    return any(m.user_id == user.id for m in case.members)


def can_see_feedback(user: User, case) -> bool:
    """The reader sees feedback on their own read once a decision was recorded."""
    return case.decided_at is not None and case.review.assignment.read.reader_id == user.id


def can_view_conference(user: User, conference) -> bool:
    """QA managers and the invited attendees see a conference."""
    return user.has_role("qa_manager") or any(a.user_id == user.id for a in conference.attendees)


# --- Viewer marks (qaportal/marks) ----------------------------------------------

def can_see_marks(user: User, mark) -> bool:
    """An opinion's marks: whoever sees the request in full (requester, consultant, QA
    staff). A review's marks: their author (the reviewer: their own only), QA staff, and
    the committee of a discrepancy case opened from that review."""
    if mark.opinion_request_id is not None:
        return opinion_request_view(user, mark.opinion_request) == "full"
    if mark.author_id == user.id or user.has_role("qa_manager", "admin"):
        return True
    review = mark.review_assignment.review
    return (review is not None and review.case is not None
            and can_score_case(user, review.case))
