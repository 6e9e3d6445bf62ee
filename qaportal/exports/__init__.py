"""Long exports made in the background: their status pages and downloads."""

from flask import Blueprint

bp = Blueprint("exports", __name__, url_prefix="/exports")

from qaportal.exports import routes  # noqa: E402,F401
