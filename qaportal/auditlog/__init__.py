"""Browsing and exporting the audit log."""

from flask import Blueprint

bp = Blueprint("auditlog", __name__, url_prefix="/audit")

from qaportal.auditlog import routes  # noqa: E402,F401
