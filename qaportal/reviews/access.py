"""How long a peer reviewer keeps the study of a review: its access grant ends on time.

An assignment grants its reviewer the study (`study_access`, source `review_assignment`)
when it is made. The reviewer needs it to review, and after submitting may still open
their review and its images for `REVIEW_ACCESS_DAYS` (to answer the committee, to see the
case again). After that, or once an assignment is cancelled, the sweep here deletes
the grant (one `study.access_revoked` audit entry each, reason given): the table holds the
grants of open and recent reviews only, not one row per review ever made. The review
itself (impression, score, record.txt) stays open to its reviewer; only the images close.

Deleting is safe for blinding: the blind role is also the assignment row itself
(qaportal/blind_roles.py reads `review_assignments.reviewer_id`), which stays.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from qaportal import audit
from qaportal.extensions import db
from qaportal.models import ReviewAssignment, Study, StudyAccess, utcnow

SOURCE = "review_assignment"
BATCH = 1_000  # grants ended per sweep (the worker runs it every minute)


def ended_grants_stmt(now: datetime, days: float) -> sa.Select:
    """The review grants no longer needed: cancelled assignments, and submitted ones more
    than `days` ago (the oldest first)."""
    a = ReviewAssignment
    return (sa.select(StudyAccess, a.status)
            .join(a, sa.and_(StudyAccess.source_type == SOURCE, StudyAccess.source_id == a.id))
            .where(sa.or_(a.status == "cancelled",
                          sa.and_(a.status == "submitted",
                                  a.submitted_at < now - timedelta(days=days))))
            .order_by(StudyAccess.id))


def sweep(now: datetime | None = None, batch: int = BATCH) -> int:
    """End up to `batch` review grants no longer needed; return how many ended."""
    now = now or utcnow()
    days = float(current_app.config["REVIEW_ACCESS_DAYS"])
    rows = db.session.execute(ended_grants_stmt(now, days).limit(batch)).all()
    studies = {s.id: s for s in db.session.scalars(
        sa.select(Study).where(Study.id.in_({g.study_id for g, _ in rows})))} if rows else {}
    for grant, status in rows:
        reason = "assignment cancelled" if status == "cancelled" else (
            f"review submitted over {days:g} days ago")
        audit.record("study.access_revoked", studies[grant.study_id], actor=None,
                     actor_label="system", user_id=grant.user_id,
                     source=f"{SOURCE}:{grant.source_id}", reason=reason)
        db.session.delete(grant)
    db.session.flush()
    return len(rows)

