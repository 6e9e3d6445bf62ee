"""Demo accounts: one per role plus a second radiologist, with credentials."""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path

import sqlalchemy as sa
from flask import current_app

from qaportal.admin import service as admin_service
from qaportal.extensions import db
from qaportal.models import BoardCertification, License, User
from qaportal.passwords import generate_password

# key: (email, full name, roles, subspecialties, licence jurisdictions)
DEMO_ACCOUNTS = {
    "radiologist": ("rad@demo.qaportal.test", "Dr. Ada Radley", ["radiologist"],
                    ["body", "chest", "general"], ["CA", "NY"]),
    "radiologist2": ("rad2@demo.qaportal.test", "Dr. Ben Okafor", ["radiologist", "reviewer"],
                     ["neuro", "body", "general"], ["CA", "TX"]),
    "reviewer": ("reviewer@demo.qaportal.test", "Dr. Chen Li", ["reviewer", "radiologist"],
                 ["chest", "msk", "general"], ["CA", "NY", "TX"]),
    "qa_manager": ("qa@demo.qaportal.test", "Dana Quinn", ["qa_manager"], [], []),
    "admin": ("admin@demo.qaportal.test", "Sam Admin", ["admin"], [], []),
}


def demo_password() -> str:
    """Return QAPORTAL_DEMO_PASSWORD, or the one generated for this instance (kept 0600)."""
    given = os.environ.get("QAPORTAL_DEMO_PASSWORD")
    if given:
        return given
    path = Path(current_app.instance_path) / "demo-password"
    if path.exists():
        return path.read_text().strip()
    password = generate_password()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    return password


def seed_accounts(password: str) -> dict[str, User]:
    """Create the demo accounts that do not exist yet; return all of them by key."""
    today = date.today()
    accounts = {}
    for key, (email, name, roles, subs, jurisdictions) in DEMO_ACCOUNTS.items():
        user = db.session.scalar(sa.select(User).where(User.email == email))
        if user is None:
            user = admin_service.create_user(email, name, roles, password, by=None,
                                             must_change=False, subspecialties=subs)
            for i, j in enumerate(jurisdictions):
                # The second radiologist's Texas licence expires soon: a visible warning.
                soon = key == "radiologist2" and j == "TX"
                db.session.add(License(
                    user=user, jurisdiction=j, number=f"{j}-{100000 + user.id * 10 + i}",
                    valid_from=today - timedelta(days=900),
                    valid_to=today + timedelta(days=20 if soon else 700),
                ))
            if "radiologist" in roles:
                db.session.add(BoardCertification(
                    user=user, board="American Board of Radiology",
                    specialty="Diagnostic Radiology",
                    certified_on=today - timedelta(days=3000),
                    expires_on=today + timedelta(days=400),
                ))
            db.session.flush()
        accounts[key] = user
    return accounts
