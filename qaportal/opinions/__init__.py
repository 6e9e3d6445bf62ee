"""Second opinions: requests, worklists, the consultant's signed opinion, deadlines."""

from flask import Blueprint

bp = Blueprint("opinions", __name__, url_prefix="/opinions")

from qaportal.opinions import deliveries, demo, hooks, routes, writing  # noqa: E402,F401
from qaportal.opinions.helpers import shown_text  # noqa: E402

bp.add_app_template_global(shown_text, "shown_text")
