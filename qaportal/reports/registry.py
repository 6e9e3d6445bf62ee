"""The report kinds: each is a ReportDefinition registered under a kind name.

A feature adds a report by registering a definition (usually at import of its
package):

    register("oppe", ReportDefinition(
        title="OPPE packet", form_class=OppeForm, build_context=build_oppe,
        template="pdf/oppe.html", allowed=qa_staff, confidential_default=True))

`build_context(params, user)` gets the validated form's data (dates as `date`) and the
acting user (None on the command line, which runs with a QA manager's reach) and
returns the template's variables. `allowed(user, params)` says whether that user may
produce the report with those parameters (the command line skips it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import abort
from flask_wtf import FlaskForm
from wtforms import BooleanField

from qaportal.models import REPORT_KINDS, User

PEER_REVIEW_STATEMENT = (
    "Confidential peer review document — privileged and protected from disclosure under "
    "applicable state peer-review statutes. Prepared for quality improvement and "
    "credentialing purposes only. Do not copy or distribute outside the peer review process."
)


class ReportForm(FlaskForm):
    """Base of every report's parameter form: subclasses add their own fields."""

    confidential = BooleanField(
        "Print the peer-review confidentiality statement on every page",
        description="For documents produced within the peer review or credentialing process.",
    )

    def prefill(self, args: Any, user: User) -> None:
        """Fill defaults on the reports page from its query string (nothing by default)."""

    def params(self) -> dict[str, Any]:
        """Return the validated parameters (every field but the CSRF token)."""
        return {k: v for k, v in self.data.items() if k != "csrf_token"}


def qa_staff(user: User | None, params: dict[str, Any]) -> bool:
    """QA managers and administrators may produce the report (the command line too)."""
    return user is None or user.has_role("qa_manager", "admin")


def qa_audience(user: User) -> bool:
    """QA managers and administrators see the report on the reports page."""
    return user.has_role("qa_manager", "admin")


@dataclass(frozen=True)
class ReportDefinition:
    """What a report kind is: its form, how its content is gathered, its print template."""

    title: str
    form_class: type[ReportForm]
    build_context: Callable[[dict[str, Any], User | None], dict[str, Any]]
    template: str
    allowed: Callable[[User | None, dict[str, Any]], bool] = qa_staff
    # Who is offered the report's form at all (allowed() still decides per parameters).
    audience: Callable[[User], bool] = qa_audience
    description: str = ""
    confidential_default: bool = False
    # Who signs the printed report: one labelled signature block per entry.
    signatories: tuple[str, ...] = ()


REPORTS: dict[str, ReportDefinition] = {}


def register(kind: str, definition: ReportDefinition) -> ReportDefinition:
    """Make a report kind available to the web pages and the command line."""
    if kind not in REPORT_KINDS:
        raise ValueError(f"report kind {kind!r} is not in models.report.REPORT_KINDS")
    if kind in REPORTS and REPORTS[kind] is not definition:
        raise ValueError(f"report kind {kind!r} is already registered")
    REPORTS[kind] = definition
    return definition


def definition_or_404(kind: str) -> ReportDefinition:
    """Return the definition of a kind, or end the request with 404."""
    definition = REPORTS.get(kind)
    if definition is None:
        abort(404)
    return definition
