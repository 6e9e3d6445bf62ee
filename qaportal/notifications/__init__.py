"""In-app notifications: the bell in the top bar and the list page."""

from flask import Blueprint

bp = Blueprint("notifications", __name__, url_prefix="/notifications")

from qaportal.notifications import routes  # noqa: E402,F401
