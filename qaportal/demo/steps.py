"""The registry of demo seeding steps, kept free of imports.

Features register their steps with `@demo_step(order)` at import time; this module imports
nothing of the portal, so a feature can be imported first (before `qaportal.demo`'s
accounts, which import the admin and feed modules) without an import cycle.
"""

from __future__ import annotations

from collections.abc import Callable

# Steps take (accounts: dict[key, User]) and return a one-line summary; run by order.
STEPS: list[tuple[int, Callable[[dict], str | None]]] = []


def demo_step(order: int):
    """Register a demo seeding step; features use it (studies 10, opinions 20, reviews 30)."""

    def decorator(fn: Callable[[dict], str | None]):
        STEPS.append((order, fn))
        return fn

    return decorator
