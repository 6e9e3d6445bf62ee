"""Queries over studies that respect who may see what."""

from __future__ import annotations

import sqlalchemy as sa
from flask import abort

from qaportal.extensions import db
from qaportal.models import Study, StudyAccess, User
from qaportal.permissions import study_access_mode


def visible_studies(user: User) -> sa.Select:
    """Return a select of the studies the user may see."""
    stmt = sa.select(Study)
    if user.has_role("qa_manager", "admin"):
        return stmt
    granted = sa.select(StudyAccess.study_id).where(
        StudyAccess.user_id == user.id, StudyAccess.revoked_at.is_(None)
    )
    return stmt.where(sa.or_(Study.owner_id == user.id, Study.id.in_(granted)))


def study_for(user: User, study_id: int) -> tuple[Study, str]:
    """Load a study the user may see, with the access mode; 404 for everyone else."""
    study = db.session.get(Study, study_id)
    if study is None:
        abort(404)
    mode = study_access_mode(user, study)
    if mode is None:
        abort(404)  # never confirm that a study exists to someone without access
    return study, mode
