"""Seed a demo installation: accounts of every role, then each feature's sample data.

Every step is idempotent: running it again adds what is missing and changes nothing else.
"""

from __future__ import annotations

from collections.abc import Callable

from qaportal.demo.accounts import DEMO_ACCOUNTS, demo_password, seed_accounts

# Steps take (accounts: dict[key, User]) and return a one-line summary; run by order.
STEPS: list[tuple[int, Callable[[dict], str | None]]] = []


def demo_step(order: int):
    """Register a demo seeding step; features use it (studies 10, opinions 20, reviews 30)."""

    def decorator(fn: Callable[[dict], str | None]):
        STEPS.append((order, fn))
        return fn

    return decorator


def seed() -> tuple[dict, str, list[str]]:
    """Seed everything; return the accounts, their password and the steps' summaries."""
    from qaportal.extensions import db

    password = demo_password()
    accounts = seed_accounts(password)
    db.session.commit()
    summaries = []
    for _, step in sorted(STEPS, key=lambda s: s[0]):
        summary = step(accounts)
        db.session.commit()
        if summary:
            summaries.append(summary)
    return accounts, password, summaries


__all__ = ["DEMO_ACCOUNTS", "STEPS", "demo_step", "seed"]
