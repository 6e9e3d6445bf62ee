"""Studies: upload and import, the study page, the viewer, de-identified downloads."""

from flask import Blueprint

bp = Blueprint("studies", __name__, url_prefix="/studies")

from qaportal.studies import (  # noqa: E402,F401
    batch_context,
    correction_routes,
    demo,
    panels,
    routes,
    upload_routes,
    viewer_routes,
)
