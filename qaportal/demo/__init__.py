"""Seed a demo installation: accounts of every role, then each feature's sample data.

Every step is idempotent: running it again adds what is missing and changes nothing else.
"""

from __future__ import annotations

from collections.abc import Callable

from qaportal.demo.accounts import DEMO_ACCOUNTS, demo_password, seed_accounts

# Features append steps taking (accounts: dict[key, User]) and returning a one-line summary.
STEPS: list[Callable[[dict], str | None]] = []


def seed() -> tuple[dict, str, list[str]]:
    """Seed everything; return the accounts, their password and the steps' summaries."""
    from qaportal.extensions import db

    password = demo_password()
    accounts = seed_accounts(password)
    db.session.commit()
    summaries = []
    for step in STEPS:
        summary = step(accounts)
        db.session.commit()
        if summary:
            summaries.append(summary)
    return accounts, password, summaries


__all__ = ["DEMO_ACCOUNTS", "STEPS", "seed"]
