"""The SLA check, run every minute by the job worker (and once by `qaportal sla-check`): warn
as deadlines approach, escalate breaches (idempotent)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from qaportal import audit
from qaportal.extensions import db
from qaportal.models import OpinionRequest, utcnow
from qaportal.models.opinion import ACTIVE_STATUSES
from qaportal.notify import notify
from qaportal.opinions.eligibility import pool_members
from qaportal.opinions.service import describe, qa_managers, request_link, update_if
from qaportal.opinions.sla import sla_state


@dataclass
class SlaSummary:
    """What one run found and sent."""

    active: int = 0
    approaching: int = 0
    overdue: int = 0
    notices: int = 0

    def line(self) -> str:
        return (f"sla-check: {self.active} active, {self.approaching} approaching, "
                f"{self.overdue} overdue, {self.notices} notification(s) sent")


def _send(user, kind: str, message: str, req: OpinionRequest, key: str) -> int:
    note = notify(user, kind, message, request_link(req), dedupe_key=key)
    return 0 if note is None else 1


def _mark_breached(req: OpinionRequest, now) -> bool:
    """Stamp the breach once: False when an overlapping run stamped it first."""
    return update_if(req, OpinionRequest.breached_at.is_(None), breached_at=now)


def check_deadlines() -> SlaSummary:
    """Notify consultants of approaching deadlines and escalate breaches; the caller commits."""
    now = utcnow()
    summary = SlaSummary()
    requests = db.session.scalars(
        sa.select(OpinionRequest).where(OpinionRequest.status.in_(ACTIVE_STATUSES))
        .order_by(OpinionRequest.due_at)
    ).all()
    for req in requests:
        summary.active += 1
        state = sla_state(req, now)
        if state == "approaching":
            summary.approaching += 1
            if req.consultant is not None:
                targets = [req.consultant]
            elif req.pool:
                targets = pool_members(req.study, req.requester_id, req.pool)
            else:
                targets = [req.requester]  # declined: waiting for the requester to re-route
            for user in targets:
                summary.notices += _send(
                    user, "opinion.deadline", f"Deadline approaching: {describe(req)}", req,
                    f"opinion:{req.id}:approaching:{user.id}")
        elif state == "overdue":
            summary.overdue += 1
            if req.breached_at is None and _mark_breached(req, now):
                audit.record("opinion.sla_breached", req, actor_label="sla-check",
                             due_at=req.due_at.isoformat())
            targets = {u.id: u for u in qa_managers()}
            targets[req.requester_id] = req.requester
            if req.consultant is not None:
                targets[req.consultant.id] = req.consultant
            for user in targets.values():
                summary.notices += _send(
                    user, "opinion.breach", f"Overdue: {describe(req)} passed its deadline",
                    req, f"opinion:{req.id}:breach:{user.id}")
    db.session.flush()
    return summary
