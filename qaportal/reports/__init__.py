"""Reports: pluggable report kinds, HTML preview, recorded PDF exports, verification."""

from flask import Blueprint

bp = Blueprint("reports", __name__, url_prefix="/reports")

# Each module registers its ReportDefinition; other features register theirs the same way.
from qaportal.reports import (  # noqa: E402,F401
    audit_trail,
    case_packet,
    committee_record,  # a discrepancy case's adjudication
    credentials_roster,
    demo,
    department,  # peer review
    practitioner,  # OPPE / FPPE
    routes,
)
