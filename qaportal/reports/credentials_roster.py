"""The "Credentials roster": every radiologist's licences, certifications and expiries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import selectinload

from qaportal.extensions import db
from qaportal.models import User, UserRole
from qaportal.models.credentials import SUBSPECIALTY_LABELS, validity_status
from qaportal.reports.forms import CredentialsRosterForm
from qaportal.reports.registry import ReportDefinition, register


@dataclass(frozen=True)
class Item:
    """One credential as printed: what it is, its end date and its status."""

    label: str
    detail: str
    ends: date | None
    status: str  # valid, expiring, expired, pending (not yet in force)


@dataclass(frozen=True)
class Row:
    """One radiologist's line of the roster."""

    user: User
    subspecialties: list[str]
    licenses: list[Item]
    certifications: list[Item]

    @property
    def has_active_license(self) -> bool:
        return any(i.status in ("valid", "expiring") for i in self.licenses)


def build_context(params: dict[str, Any], user: User | None) -> dict[str, Any]:
    """Gather the radiologists and the state of each credential on the chosen day."""
    day: date = params["as_of"]
    warn = int(current_app.config["CREDENTIAL_EXPIRY_WARNING_DAYS"])
    stmt = (
        sa.select(User).join(UserRole).where(UserRole.role == "radiologist")
        .options(selectinload(User.licenses), selectinload(User.certifications))
        .order_by(User.full_name, User.id)
    )
    if not params.get("include_inactive"):
        stmt = stmt.where(User.active.is_(True))
    rows = []
    for u in db.session.scalars(stmt).unique():
        licenses = [
            Item(lic.jurisdiction, lic.number, lic.valid_to,
                 "pending" if lic.valid_from > day else validity_status(lic.valid_to, day, warn))
            for lic in sorted(u.licenses, key=lambda x: (x.jurisdiction, x.valid_to))
        ]
        certs = [
            Item(c.specialty, c.board, c.expires_on, validity_status(c.expires_on, day, warn))
            for c in sorted(u.certifications, key=lambda x: (x.board, x.specialty))
        ]
        subs = sorted(SUBSPECIALTY_LABELS.get(s, s) for s in u.subspecialty_names)
        rows.append(Row(u, subs, licenses, certs))
    attention = sorted(
        ((r.user, kind, i) for r in rows
         for kind, items in (("Licence", r.licenses), ("Certification", r.certifications))
         for i in items if i.status != "valid"),
        key=lambda t: (t[2].ends or date.max, t[0].full_name),
    )
    every = [i for r in rows for i in r.licenses + r.certifications]
    return {
        "title": "Credentials roster",
        "subtitle": f"Status as of {day:%d %B %Y}",
        "as_of": day,
        "warn_days": warn,
        "rows": rows,
        "attention": attention,
        "counts": {
            "radiologists": len(rows),
            "expired": sum(i.status == "expired" for i in every),
            "expiring": sum(i.status == "expiring" for i in every),
            "no_active_license": sum(not r.has_active_license for r in rows),
        },
    }


register("credentials", ReportDefinition(
    title="Credentials roster",
    form_class=CredentialsRosterForm,
    build_context=build_context,
    template="pdf/credentials_roster.html",
    description="All radiologists with licences, board certifications and subspecialties, "
                "marking what has expired or expires soon.",
    confidential_default=True,
    signatories=("Credentialing committee chair", "Medical director"),
))
