"""Administration: accounts, roles and credentials."""

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")

from qaportal.admin import peer_routes, reader_mapping, routes  # noqa: E402,F401
