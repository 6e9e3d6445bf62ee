"""The key image of a viewer mark, drawn: for whoever may see the mark (404 otherwise)."""

from __future__ import annotations

from flask import Response, abort
from flask_login import current_user, login_required

from qaportal import audit
from qaportal.extensions import db
from qaportal.marks import bp
from qaportal.marks.display import BURNED_IN, KeyImageProblem, key_image_png
from qaportal.models import ViewerMark
from qaportal.permissions import can_see_marks, is_blind_access


def _study_of(mark: ViewerMark):
    if mark.opinion_request_id is not None:
        return mark.opinion_request.study
    return mark.review_assignment.read.study


@bp.route("/<int:mark_id>/key-images/<int:index>.png")
@login_required
def key_image(mark_id: int, index: int):
    """One key image with the marks drawn (PNG); URLs carry ids only."""
    mark = db.session.get(ViewerMark, mark_id)
    if mark is None or not can_see_marks(current_user, mark):
        abort(404)
    study = _study_of(mark)
    blind = mark.review_assignment_id is not None or is_blind_access(current_user, study)
    if blind and study.burned_in_suspected and not current_user.has_role("qa_manager",
                                                                          "admin"):
        abort(404, description=BURNED_IN)
    try:
        png = key_image_png(mark, index)
    except IndexError:
        abort(404)
    except KeyImageProblem as exc:
        abort(422, description=str(exc))
    audit.record("viewer_marks.key_image_viewed", mark, study_id=study.id, index=index)
    db.session.commit()
    response = Response(png, mimetype="image/png")
    response.headers["Cache-Control"] = "private, no-store"
    return response
