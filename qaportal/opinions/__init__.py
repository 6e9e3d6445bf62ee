"""Second opinions: requests, worklists, the consultant's signed opinion, deadlines."""

from flask import Blueprint

bp = Blueprint("opinions", __name__, url_prefix="/opinions")

from qaportal.opinions import demo, hooks, routes, writing  # noqa: E402,F401
