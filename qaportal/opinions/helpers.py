"""View helpers shared by the opinion pages: loading with permission, study links."""

from __future__ import annotations

from flask import abort, current_app, g, url_for
from flask_login import current_user

from qaportal.extensions import db
from qaportal.models import OpinionRequest, User
from qaportal.permissions import opinion_request_view, study_access_mode
from qaportal.studies.presenter import present_for


def request_or_404(request_id: int, user: User) -> tuple[OpinionRequest, str]:
    """Load a request the user may see, with how they see it; 404 for everyone else."""
    req = db.session.get(OpinionRequest, request_id)
    if req is None:
        abort(404)
    view = opinion_request_view(user, req)
    if view is None:
        abort(404)  # never confirm that a request exists
    return req, view


def study_mode(req: OpinionRequest, user: User) -> str:
    """Return how the study is shown to this user on the request pages."""
    if user.id == req.consultant_id and user.id != req.requester_id:
        granted = study_access_mode(user, req.study)
        if req.deidentified or granted != "full":
            return "deidentified"
        return "full"
    return study_access_mode(user, req.study) or "deidentified"


def images_url(req: OpinionRequest) -> str:
    """Return the link to the images: the viewer when installed, else the study page."""
    if "studies.viewer" in current_app.view_functions:
        return url_for("studies.viewer", study_id=req.study_id)
    return url_for("studies.detail", study_id=req.study_id)


def shown_text(req: OpinionRequest, text: str | None) -> str:
    """Return a request's free text as the current user may see it.

    To a user who sees the study de-identified (a consultant of a de-identified request, a
    pool member deciding whether to claim), the study's known patient identifiers are
    replaced in what the requester typed (the study presenter's scrubber).
    """
    cache = g.setdefault("opinion_text_scrubbers", {})
    if req.id not in cache:
        deidentified = study_mode(req, current_user) == "deidentified"
        cache[req.id] = present_for(current_user, req.study, deidentified=deidentified).text
    return cache[req.id](text)
