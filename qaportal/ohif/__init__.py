"""OHIF's prebuilt viewer served at /viewer/ohif/, reading the portal's own DICOMweb.

fetch.py brings the pinned @ohif/app into vendor/ohif (never committed); config.py writes
its app-config.js; routes.py serves both behind sign-in with the viewer's own CSP.
"""

from flask import Blueprint

from qaportal.ohif.fetch import SERVED_AT

bp = Blueprint("ohif", __name__, url_prefix=SERVED_AT.rstrip("/"))

from qaportal.ohif import links, routes  # noqa: E402,F401
