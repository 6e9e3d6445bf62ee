"""Viewer marks in the workflow: an SR or KOS saved from the viewer through STOW-RS is
linked to the author's open opinion or review (context, linking), shown on the pages and
in the PDFs with its key images drawn (display, routes)."""

from flask import Blueprint

bp = Blueprint("marks", __name__, url_prefix="/marks")

from qaportal.marks import routes  # noqa: E402,F401
