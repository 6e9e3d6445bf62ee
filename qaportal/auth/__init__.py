"""Sign-in, sign-out, password change and two-factor enrolment."""

from flask import Blueprint

bp = Blueprint("auth", __name__)

from qaportal.auth import routes  # noqa: E402,F401
