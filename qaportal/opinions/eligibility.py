"""Who may answer a request: licence for the jurisdiction, subspecialty, active, not self,
and nobody who holds a blind role on the study (qaportal/blind_roles.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa

from qaportal.blind_roles import BLIND_HOLDER_REASON, blind_holder_ids, held_blind_role
from qaportal.extensions import db
from qaportal.models import License, Study, User, UserRole
from qaportal.models.credentials import SUBSPECIALTY_LABELS


@dataclass(frozen=True)
class Candidate:
    """A colleague and why they may not be offered (empty: eligible)."""

    user: User
    reasons: tuple[str, ...]

    @property
    def eligible(self) -> bool:
        return not self.reasons


def active_license(user: User, jurisdiction: str | None, day: date | None = None
                   ) -> License | None:
    """Return the user's licence covering the jurisdiction on the day, if any."""
    if not jurisdiction:
        return None
    day = day or date.today()
    for lic in user.licenses:
        if lic.jurisdiction.upper() == jurisdiction.upper() and lic.is_active_on(day):
            return lic
    return None


def ineligibility(user: User, study: Study, *, requester_id: int, pool: str | None,
                  day: date | None = None, blind_ids: set[int] | None = None
                  ) -> tuple[str, ...]:
    """Return why the user may not answer a request on the study (empty: eligible).

    blind_ids: the study's blind-role holders when the caller already has them (lists).
    """
    reasons = []
    if user.id == requester_id:
        reasons.append("is the requester")
    if (user.id in blind_ids if blind_ids is not None
            else held_blind_role(user.id, study.id)):
        reasons.append(BLIND_HOLDER_REASON)
    if not user.active:
        reasons.append("account is inactive")
    if not user.has_role("radiologist"):
        reasons.append("is not a radiologist")
    if not study.jurisdiction:
        reasons.append("the study has no jurisdiction")
    elif active_license(user, study.jurisdiction, day) is None:
        reasons.append(f"no active licence for {study.jurisdiction}")
    if pool and pool not in user.subspecialty_names:
        reasons.append(f"not in the {SUBSPECIALTY_LABELS.get(pool, pool)} pool")
    return tuple(reasons)


def shown_reasons(reasons: tuple[str, ...]) -> tuple[str, ...]:
    """Return the reasons that may be shown to a requester: never that someone reviews the
    study blind (the requester may be its reader)."""
    return tuple(r for r in reasons if r != BLIND_HOLDER_REASON)


def request_ineligibility(user: User, req, day: date | None = None) -> tuple[str, ...]:
    """Return why the user may not take or sign this request (empty: eligible)."""
    return ineligibility(user, req.study, requester_id=req.requester_id, pool=req.pool, day=day)


def colleagues(study: Study, requester: User) -> list[Candidate]:
    """Return every radiologist with the reasons each one is or is not offered."""
    users = db.session.scalars(
        sa.select(User).where(User.roles.any(UserRole.role == "radiologist"))
        .order_by(User.full_name)
    ).all()
    blind = blind_holder_ids(study.id)
    return [Candidate(u, ineligibility(u, study, requester_id=requester.id, pool=None,
                                       blind_ids=blind))
            for u in users]


def pool_members(study: Study, requester_id: int, pool: str) -> list[User]:
    """Return the users who may claim a pool request on the study."""
    users = db.session.scalars(
        sa.select(User).where(User.roles.any(UserRole.role == "radiologist"),
                              User.active.is_(True))
    ).all()
    blind = blind_holder_ids(study.id)
    return [u for u in users
            if not ineligibility(u, study, requester_id=requester_id, pool=pool,
                                 blind_ids=blind)]
