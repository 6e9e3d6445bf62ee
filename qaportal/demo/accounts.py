"""Demo accounts: one per role plus a second radiologist, with credentials."""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path

import sqlalchemy as sa
from flask import current_app

from qaportal import audit
from qaportal.admin import service as admin_service
from qaportal.extensions import db
from qaportal.models import BoardCertification, License, User
from qaportal.passwords import generate_password, hash_password, verify_password

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
    """Return QAPORTAL_DEMO_PASSWORD, or the password generated for this instance.

    Either is kept in instance/demo-password (mode 0600), so that later runs without the
    variable print the password the demo accounts were given.
    """
    path = Path(current_app.instance_path) / "demo-password"
    given = password_chosen()
    kept = path.read_text().strip() if path.exists() else None
    if kept and (not given or given == kept):
        return kept
    password = given or generate_password()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    return password


def password_chosen() -> str | None:
    """Return QAPORTAL_DEMO_PASSWORD when it is set (then demo accounts are reset to it)."""
    return os.environ.get("QAPORTAL_DEMO_PASSWORD") or None


def instance_state() -> str:
    """Say what the database holds: "empty" (no accounts), "demo" (demo accounts seeded
    before) or "real" (accounts, none of them a demo account)."""
    emails = [spec[0] for spec in DEMO_ACCOUNTS.values()]
    if db.session.scalar(sa.select(User.id).where(User.email.in_(emails)).limit(1)):
        return "demo"
    if db.session.scalar(sa.select(User.id).limit(1)):
        return "real"
    return "empty"


def align_passwords(accounts: dict[str, User], password: str, *, reset: bool) -> list[str]:
    """Return the keys of demo accounts whose password is not `password`.

    With reset (QAPORTAL_DEMO_PASSWORD was set), first give those accounts that password
    (audited as a reset by the command line), so the list comes back empty.
    """
    differ = [key for key, user in accounts.items()
              if not verify_password(user.password_hash, password)]
    if not reset:
        return differ
    for key in differ:
        user = accounts[key]
        user.password_hash = hash_password(password)
        user.must_change_password = False
        user.session_version += 1  # sessions opened with the old password end
        audit.record("user.password_reset", user, actor_label="cli",
                     reason="QAPORTAL_DEMO_PASSWORD")
    db.session.flush()
    return []


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
