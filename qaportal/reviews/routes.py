"""The reviewer's worklist and the blind review (impression, reveal, score), ad-hoc reviews."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Response, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from qaportal import audit
from qaportal.access_prefetch import prefetched
from qaportal.auth.forms import EmptyForm
from qaportal.extensions import db
from qaportal.marks.display import marks_lines, reviewer_marks
from qaportal.models import ReviewAssignment, Study, User, utcnow
from qaportal.models.review import CATEGORY_LABELS, SCORE_LABELS
from qaportal.paging import Page
from qaportal.permissions import (
    can_work_review,
    is_blind_access,
    role_required,
    study_access_mode,
)
from qaportal.reviews import bp, lists, service
from qaportal.reviews.blinding import BlindCase, blind_view, for_assignment
from qaportal.reviews.forms import ImpressionForm, ScoreForm
from qaportal.studies.actions import StudyAction, study_action
from qaportal.studies.presenter import present_for
from qaportal.studies.queries import study_for


def _assignment_or_404(assignment_id: int) -> ReviewAssignment:
    assignment = db.session.get(ReviewAssignment, assignment_id)
    if assignment is None or not can_work_review(current_user, assignment):
        abort(404)
    return assignment


def _pages() -> tuple[Page, Page]:
    """This reviewer's page of open assignments (?cursor=) and of submitted ones (?done=)."""
    return (lists.assignments_page(current_user.id, "assigned", request.args.get("cursor")),
            lists.assignments_page(current_user.id, "submitted", request.args.get("done")))


@bp.route("/")
@role_required("reviewer")
def worklist():
    open_page, done_page = _pages()
    open_, done = open_page.items, done_page.items
    with prefetched(current_user, [a.read.study for a in open_ + done]):
        rows_open = [(a, blind_view(current_user, a.read, a.deidentified)) for a in open_]
        rows_done = [(a, blind_view(current_user, a.read, a.deidentified)) for a in done]
    audit.record("review.worklist_viewed", open=len(open_), done=len(done))
    db.session.commit()
    return render_template("reviews/worklist.html", rows_open=rows_open, rows_done=rows_done,
                           open_page=open_page, done_page=done_page,
                           cursors={"cursor": request.args.get("cursor", ""),
                                    "done": request.args.get("done", "")},
                           now=utcnow(), score_labels=SCORE_LABELS)


@bp.route("/assignments.json")
@role_required("reviewer")
def worklist_json():
    """A page of open assignments then a page of submitted ones; `next` and `next_done` are
    the cursors of the following pages (?cursor=, ?done=), null on the last page."""
    items = []
    open_page, done_page = _pages()
    assignments = open_page.items + done_page.items
    with prefetched(current_user, [a.read.study for a in assignments]):
        views = [blind_view(current_user, a.read, a.deidentified) for a in assignments]
    for a, view in zip(assignments, views, strict=True):
        items.append({
            "id": a.id, "status": a.status, "source": a.source,
            "due_at": a.due_at.isoformat() if a.due_at else None,
            "study": {"label": view.label, "patient": view.patient_name,
                      "modalities": view.modalities, "deidentified": view.deidentified},
            "score": a.review.score if a.review else None,
            "url": url_for("reviews.review", assignment_id=a.id),
        })
    audit.record("review.worklist_viewed", format="json", count=len(items))
    db.session.commit()
    return jsonify(assignments=items, next=open_page.older, next_done=done_page.older,
                   page_size=open_page.size)


def _render_review(assignment: ReviewAssignment, *, impression_form=None, score_form=None,
                   status: int = 200):
    case = for_assignment(assignment)
    return render_template(
        "reviews/review.html", a=assignment, case=case,
        impression_form=impression_form or ImpressionForm(formdata=None),
        score_form=score_form or ScoreForm(formdata=None),
        score_labels=SCORE_LABELS, category_labels=CATEGORY_LABELS, now=utcnow(),
        marks=reviewer_marks(assignment, current_user),
        # the images close REVIEW_ACCESS_DAYS after submission (qaportal/reviews/access.py)
        images_closed=(assignment.status == "submitted"
                       and study_access_mode(current_user, assignment.read.study) is None),
    ), status


@bp.route("/<int:assignment_id>")
@role_required("reviewer")
def review(assignment_id: int):
    assignment = _assignment_or_404(assignment_id)
    step = ("submitted" if assignment.status == "submitted" else
            "score" if assignment.revealed_at else "impression")
    audit.record("review.opened", assignment, study_id=assignment.read.study_id, step=step)
    db.session.commit()
    return _render_review(assignment)


@bp.route("/<int:assignment_id>/reveal", methods=["POST"])
@role_required("reviewer")
def reveal(assignment_id: int):
    assignment = _assignment_or_404(assignment_id)
    form = ImpressionForm()
    if not form.validate_on_submit():
        return _render_review(assignment, impression_form=form, status=400)
    try:
        service.reveal(assignment, form.impression.data or "", by=current_user)
    except service.ReviewError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        db.session.commit()
        flash("Your impression is saved. The original report is now shown.", "success")
    return redirect(url_for("reviews.review", assignment_id=assignment.id))


@bp.route("/<int:assignment_id>/submit", methods=["POST"])
@role_required("reviewer")
def submit(assignment_id: int):
    assignment = _assignment_or_404(assignment_id)
    form = ScoreForm()
    if not form.validate_on_submit():
        return _render_review(assignment, score_form=form, status=400)
    try:
        service.submit(assignment, current_user, score=form.score.data,
                       category=form.category.data or None, comment=form.comment.data or "",
                       unable_reason=form.unable_reason.data or "",
                       learning_case=form.learning_case.data)
    except service.ReviewError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("reviews.review", assignment_id=assignment.id))
    db.session.commit()
    flash("Review submitted. Thank you.", "success")
    return redirect(url_for("reviews.review", assignment_id=assignment.id))


def _record_text(a: ReviewAssignment, case: BlindCase) -> str:
    v = case.view
    lines = [
        "qaportal peer review record",
        "CONFIDENTIAL: peer-review records are privileged and confidential.",
        "",
        f"Review: {a.id} ({a.source})",
        f"Study: {v.label}",
        f"Patient: {v.patient_name}{' (de-identified)' if v.deidentified else ''}",
        f"Clinical question: {case.clinical_question or '-'}",
        f"Clinical history: {case.clinical_history or '-'}",
        "",
        "Reviewer's impression:",
        case.text(a.impression) or "-",
    ]
    if a.revealed_at:
        lines += ["", "Original report:", case.report_text]
    if a.review:
        r = a.review
        lines += ["", f"Score: {SCORE_LABELS[r.score]}",
                  f"Category: {CATEGORY_LABELS.get(r.category or '', '-')}",
                  f"Comment: {case.text(r.comment) or '-'}",
                  f"Good learning case: {'yes' if r.learning_case else 'no'}",
                  f"Submitted: {r.submitted_at.isoformat()}"]
    lines += marks_lines(reviewer_marks(a, a.reviewer), case.text)
    return "\n".join(lines) + "\n"


@bp.route("/<int:assignment_id>/record.txt")
@role_required("reviewer")
def download(assignment_id: int):
    assignment = _assignment_or_404(assignment_id)
    text = _record_text(assignment, for_assignment(assignment))
    audit.record("review.downloaded", assignment, study_id=assignment.read.study_id)
    db.session.commit()
    return Response(text, mimetype="text/plain", headers={
        "Content-Disposition": f'attachment; filename="peer-review-{assignment.id}.txt"'})


@bp.route("/adhoc/<int:study_id>", methods=["GET", "POST"])
@role_required("reviewer")
def adhoc(study_id: int):
    study, mode = study_for(current_user, study_id)
    problem = service.adhoc_problem(study.read, current_user)
    form = EmptyForm()
    if form.validate_on_submit() and problem is None:
        assignment = service.open_adhoc(study.read, current_user)
        db.session.commit()
        flash("Ad-hoc review opened. It is counted apart from the random sample.", "success")
        return redirect(url_for("reviews.review", assignment_id=assignment.id))
    view = present_for(current_user, study, deidentified=mode != "full").view
    return render_template("reviews/adhoc.html", study=study, view=view,
                           problem=problem, form=form)


@study_action
def _review_actions(user: User, study: Study, mode: str) -> list[StudyAction]:
    """Offer reviewers an ad-hoc review of a read they came across, or their open review."""
    if not user.has_role("reviewer") or study.read is None:
        return []
    mine = db.session.scalar(sa.select(ReviewAssignment.id).where(
        ReviewAssignment.read_id == study.read.id, ReviewAssignment.reviewer_id == user.id))
    if mine is not None:
        return [StudyAction("Your peer review", url_for("reviews.review", assignment_id=mine))]
    if service.adhoc_problem(study.read, user) or is_blind_access(user, study):
        return []
    return [StudyAction("Ad-hoc peer review", url_for("reviews.adhoc", study_id=study.id))]
