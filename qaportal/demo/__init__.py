"""Seed a demo installation: accounts of every role, then each feature's sample data.

Every step is idempotent: running it again adds what is missing and changes nothing else.
`qaportal demo` seeds only an empty database or one it seeded before (see instance_state).
"""

from __future__ import annotations

from qaportal.demo.accounts import (
    DEMO_ACCOUNTS,
    align_passwords,
    demo_password,
    instance_state,
    password_chosen,
    seed_accounts,
)
from qaportal.demo.steps import STEPS, demo_step


def seed() -> tuple[dict, str, list[str]]:
    """Seed everything; return the accounts, the demo password and the steps' summaries.

    Accounts created earlier keep their password unless QAPORTAL_DEMO_PASSWORD is set (then
    they are reset to it); `align_passwords(accounts, password, reset=False)` names those
    whose password is not the one returned.
    """
    from qaportal.extensions import db

    password = demo_password()
    accounts = seed_accounts(password)
    align_passwords(accounts, password, reset=password_chosen() is not None)
    db.session.commit()
    summaries = []
    for _, step in sorted(STEPS, key=lambda s: s[0]):
        summary = step(accounts)
        db.session.commit()
        if summary:
            summaries.append(summary)
    return accounts, password, summaries


__all__ = ["DEMO_ACCOUNTS", "STEPS", "align_passwords", "demo_step", "instance_state",
           "seed"]
