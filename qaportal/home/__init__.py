"""The home page of each role, and the health check."""

from flask import Blueprint

bp = Blueprint("home", __name__)

from qaportal.home import routes  # noqa: E402,F401
