"""Peer review, reviewer side: worklist, blind review, committee scoring, reader feedback."""

from flask import Blueprint, current_app, url_for

bp = Blueprint("reviews", __name__, url_prefix="/reviews")


@bp.app_template_global()
def study_viewer_url(study_id: int) -> str | None:
    """Return the image viewer's URL for a study, when the viewer is installed."""
    if "studies.viewer" in current_app.view_functions:
        return url_for("studies.viewer", study_id=study_id)
    return None


from qaportal.reviews import committee_work, panels, routes, routes_cases  # noqa: E402,F401
