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

    from qaportal.extensions import db
    from qaportal.models import StudyAccess

    if user.id == study.owner_id or user.has_role("qa_manager", "admin"):
        return "full"
    modes = set(db.session.scalars(
        sa.select(StudyAccess.mode).where(
            StudyAccess.study_id == study.id,
            StudyAccess.user_id == user.id,
            StudyAccess.revoked_at.is_(None),
        )
    ))
    if not modes:
        return None
    return "full" if "full" in modes else "deidentified"


def can_view_study(user: User, study) -> bool:
    """A study is visible to its uploader, to users a workflow shared it with, and to QA."""
    return study_access_mode(user, study) is not None


def can_edit_study(user: User, study) -> bool:
    """The uploader edits the clinical notes and the original read; admins may correct them."""
    return user.id == study.owner_id or user.has_role("admin")


# --- Peer review and QA (issue 5) ---------------------------------------------------------
# Access granted by these workflows is blind: it never shows who read the study.
BLIND_SOURCES = ("review_assignment", "discrepancy_case", "conference")


def read_blinded(user: User, study) -> bool:
    """Return True when the user sees the study only through blind peer-review workflows."""
    import sqlalchemy as sa

    from qaportal.extensions import db
    from qaportal.models import StudyAccess

    if user.id == study.owner_id or user.has_role("qa_manager", "admin"):
        return False
    sources = set(db.session.scalars(sa.select(StudyAccess.source_type).where(
        StudyAccess.study_id == study.id, StudyAccess.user_id == user.id,
        StudyAccess.revoked_at.is_(None))))
    return bool(sources) and sources <= set(BLIND_SOURCES)


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
