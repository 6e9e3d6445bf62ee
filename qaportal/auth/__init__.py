"""Sign-in, sign-out, password change, two-factor enrolment and personal API tokens."""

from flask import Blueprint

bp = Blueprint("auth", __name__)

from qaportal.auth import routes, token_routes  # noqa: E402,F401
