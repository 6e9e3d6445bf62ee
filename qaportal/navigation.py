"""The main navigation: what each role sees, offered only when the view exists."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, current_app
from flask_login import current_user


@dataclass(frozen=True)
class NavItem:
    """One link in the top navigation."""

    label: str
    endpoint: str
    roles: tuple[str, ...]  # empty: every signed-in user
    when: Callable | None = None  # shown only when when(user) is true (e.g. has work there)


def _has_committee_work(user) -> bool:
    from qaportal.reviews.committee_work import has_committee_work

    return has_committee_work(user)


# Features add their entries here; an entry whose view is not registered is not shown.
NAV_ITEMS: list[NavItem] = [
    NavItem("Home", "home.index", ()),
    NavItem("Studies", "studies.index", ("radiologist", "qa_manager", "admin")),
    NavItem("Second opinions", "opinions.worklist", ("radiologist",)),
    NavItem("Reviews", "reviews.worklist", ("reviewer",)),
    NavItem("Committee", "reviews.committee_list", ("reviewer", "radiologist"),
            when=_has_committee_work),
    NavItem("Quality", "qa.dashboard", ("qa_manager",)),
    NavItem("Reports", "reports.index", ("qa_manager", "admin")),
    NavItem("Audit log", "auditlog.index", ("qa_manager", "admin")),
    NavItem("Users", "admin.users", ("admin",)),
]


def visible_items() -> list[NavItem]:
    """Return the navigation entries the current user may use."""
    if not current_user.is_authenticated:
        return []
    views = current_app.view_functions
    return [
        item for item in NAV_ITEMS
        if item.endpoint in views and (not item.roles or current_user.has_role(*item.roles))
        and (item.when is None or item.when(current_user))
    ]


def init_app(app: Flask) -> None:
    """Expose the navigation and labels to templates."""
    from qaportal.models.credentials import SUBSPECIALTY_LABELS
    from qaportal.models.user import ROLE_LABELS

    @app.context_processor
    def inject():
        return {
            "nav_items": visible_items(),
            "role_labels": ROLE_LABELS,
            "subspecialty_labels": SUBSPECIALTY_LABELS,
        }

    @app.template_filter("localtime")
    def localtime(value, fmt: str = "%Y-%m-%d %H:%M"):
        """Format a UTC datetime for display (server's local zone)."""
        if value is None:
            return ""
        return value.astimezone().strftime(fmt)
