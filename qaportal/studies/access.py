"""Grant and revoke access to a study on behalf of a workflow."""

from __future__ import annotations

import sqlalchemy as sa

from qaportal import audit
from qaportal.blind_roles import RoleConflict, grant_refusal
from qaportal.extensions import db
from qaportal.jobs import enqueue_after_commit
from qaportal.models import Study, StudyAccess, User, utcnow


def grant_access(study: Study, user: User, *, mode: str, source: tuple[str, int],
                 by: User | None) -> StudyAccess:
    """Give user access to study for a workflow object (idempotent); audit it.

    Every grant re-checks blinding across roles (qaportal.blind_roles): a grant that
    would give a blind reviewer a non-blind role, or a blind role to someone who knows
    the reader, raises RoleConflict, whatever the caller checked before.
    """
    source_type, source_id = source
    existing = db.session.scalar(sa.select(StudyAccess).where(
        StudyAccess.study_id == study.id, StudyAccess.user_id == user.id,
        StudyAccess.source_type == source_type, StudyAccess.source_id == source_id,
    ))
    if existing is not None and existing.revoked_at is None and existing.mode == mode:
        return existing
    db.session.flush()  # the check reads the caller's new assignment/membership rows
    refusal = grant_refusal(user.id, study, source)
    if refusal:
        raise RoleConflict(f"{user.full_name} {refusal}.")
    if existing is not None:
        existing.revoked_at = None
        existing.mode = mode
        grant = existing
    else:
        grant = StudyAccess(study=study, user=user, mode=mode, source_type=source_type,
                            source_id=source_id, granted_by_id=by.id if by else None)
        db.session.add(grant)
    db.session.flush()
    audit.record("study.access_granted", study, actor=by, user_id=user.id, mode=mode,
                 source=f"{source_type}:{source_id}")
    # The headers as this user will be served them (de-identified for a blind role),
    # computed by the worker before they open the study.
    enqueue_after_commit(db.session, "warm_metadata", study.id, user.id)
    return grant


def revoke_access(study: Study, user: User, *, source: tuple[str, int],
                  by: User | None) -> None:
    """Withdraw the access a workflow object gave (other grants stay)."""
    source_type, source_id = source
    grants = db.session.scalars(sa.select(StudyAccess).where(
        StudyAccess.study_id == study.id, StudyAccess.user_id == user.id,
        StudyAccess.source_type == source_type, StudyAccess.source_id == source_id,
        StudyAccess.revoked_at.is_(None),
    )).all()
    for grant in grants:
        grant.revoked_at = utcnow()
        audit.record("study.access_revoked", study, actor=by, user_id=user.id,
                     source=f"{source_type}:{source_id}")
