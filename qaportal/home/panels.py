"""Panels of the home page: each feature contributes what its roles need to see first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qaportal.models import User


@dataclass(frozen=True)
class Panel:
    """A box on the home page, shown to users holding one of its roles."""

    title: str
    template: str
    roles: tuple[str, ...]
    context: Callable[[User], dict[str, Any] | None]  # None: nothing to show this user
    order: int = 50


PANELS: list[Panel] = []


def panel(title: str, template: str, roles: tuple[str, ...], order: int = 50):
    """Register a home-page panel whose context the decorated function builds."""

    def decorator(fn: Callable[[User], dict[str, Any] | None]):
        PANELS.append(Panel(title, template, roles, fn, order))
        return fn

    return decorator


def panels_for(user: User) -> list[tuple[Panel, dict[str, Any]]]:
    """Return the panels the user sees, with their contexts, in display order; a panel
    whose context is None has nothing for this user and is left out."""
    shown = [p for p in PANELS if user.has_role(*p.roles)]
    contexts = [(p, p.context(user)) for p in sorted(shown, key=lambda p: (p.order, p.title))]
    return [(p, ctx) for p, ctx in contexts if ctx is not None]
