"""QA manager's view of reviews (with amendments) and discrepancy cases (committee, decision).

These pages show the reader and the reviewer together: each view is audited.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import (
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from qaportal import audit
from qaportal.extensions import db
from qaportal.forms_choices import choices
from qaportal.marks.display import qa_marks
from qaportal.models import (
    DiscrepancyCase,
    Review,
    ReviewAssignment,
    User,
    loading,
)
from qaportal.models.discrepancy import CASE_STATUSES, STATUS_LABELS
from qaportal.models.review import CATEGORY_LABELS, REVIEW_SCORES, SCORE_LABELS
from qaportal.paging import Key, capped_count, keyset_page
from qaportal.pdf import PdfError
from qaportal.permissions import role_required
from qaportal.qa import bp
from qaportal.qa import cases as case_service
from qaportal.qa.forms import AmendForm, CommitteeForm, DecisionForm
from qaportal.qa.service import amend_review
from qaportal.reports import service as report_service
from qaportal.reviews.service import ReviewError
from qaportal.studies.corrections import corrected_review_ids, reviews_on_corrected_reads
from qaportal.studies.presenter import present

PAGE_SIZE = 100
REVIEW_ORDER = (Key(Review.submitted_at, desc=True), Key(Review.id, desc=True))


@bp.route("/reviews")
@role_required("qa_manager")
def reviews():
    score = request.args.get("score", "")
    source = request.args.get("source", "")
    stmt = sa.select(Review).join(ReviewAssignment, ReviewAssignment.id == Review.assignment_id)
    if score in REVIEW_SCORES:
        stmt = stmt.where(Review.score == score)
    if source in ("sample", "adhoc", "legacy"):
        stmt = stmt.where(ReviewAssignment.source == source)
    flag = request.args.get("flag", "")
    if flag == "corrected":  # scored on a read corrected since
        stmt = stmt.where(Review.id.in_(corrected_review_ids()))
    page = keyset_page(db.session, stmt, REVIEW_ORDER, Review.id, request.args.get("cursor"),
                       PAGE_SIZE, options=loading.qa_listed_review_rows())
    total, capped = capped_count(db.session, stmt, current_app.config["LIST_COUNT_CAP"])
    audit.record("qa.identities_viewed", page="reviews", count=len(page.items))
    db.session.commit()
    return render_template("qa/reviews.html", reviews=page.items, total=total, capped=capped,
                           page=page,
                           corrected=reviews_on_corrected_reads(r.id for r in page.items),
                           score=score, source=source, flag=flag,
                           score_labels=SCORE_LABELS, scores=REVIEW_SCORES)


def _review_or_404(review_id: int) -> Review:
    review = db.session.get(Review, review_id)
    if review is None:
        abort(404)
    return review


def _render_review(review: Review, form=None, status: int = 200):
    if form is None:
        eff = review.effective
        form = AmendForm(formdata=None, score=eff.score, category=eff.category or "",
                         comment=eff.comment, learning_case=eff.learning_case)
    read = review.assignment.read
    return render_template("qa/review_detail.html", review=review, read=read,
                           view=present(read.study, "full"), form=form,
                           corrected=bool(reviews_on_corrected_reads([review.id])),
                           score_labels=SCORE_LABELS, category_labels=CATEGORY_LABELS), status


@bp.route("/reviews/<int:review_id>")
@role_required("qa_manager")
def review_detail(review_id: int):
    review = _review_or_404(review_id)
    audit.record("qa.identities_viewed", review, page="review",
                 study_id=review.assignment.read.study_id)
    db.session.commit()
    return _render_review(review)


@bp.route("/reviews/<int:review_id>/amend", methods=["POST"])
@role_required("qa_manager")
def amend(review_id: int):
    review = _review_or_404(review_id)
    form = AmendForm()
    if not form.validate_on_submit():
        return _render_review(review, form, 400)
    try:
        amend_review(review, current_user, reason=form.reason.data, score=form.score.data,
                     category=form.category.data or None, comment=form.comment.data or "",
                     learning_case=form.learning_case.data)
    except ReviewError as exc:
        db.session.rollback()
        form.reason.errors = [*form.reason.errors, str(exc)]
        return _render_review(review, form, 400)
    db.session.commit()
    flash("Amendment recorded; the original review is kept.", "success")
    return redirect(url_for("qa.review_detail", review_id=review.id))


# Oldest opened first: the order of ix_discrepancy_cases_opened (opened_at, id), of its
# part over the cases not closed (ix_discrepancy_cases_active_opened) and of
# ix_discrepancy_cases_status_opened (status, opened_at, id).
CASE_ORDER = (Key(DiscrepancyCase.opened_at), Key(DiscrepancyCase.id))
# ?status=: "" the cases not closed (the QA work), one state, or "all".
CASE_FILTERS = ("", *CASE_STATUSES, "all")


def cases_stmt(status: str) -> sa.Select:
    """The discrepancy cases of one filter, oldest opened first."""
    stmt = sa.select(DiscrepancyCase).order_by(*[k.order() for k in CASE_ORDER])
    if status in CASE_STATUSES:
        return stmt.where(DiscrepancyCase.status == status)
    if status == "all":
        return stmt
    return stmt.where(DiscrepancyCase.status != "closed")


@bp.route("/cases")
@role_required("qa_manager")
def cases():
    status = request.args.get("status", "")
    if status not in CASE_FILTERS:
        status = ""
    stmt = cases_stmt(status)
    page = keyset_page(db.session, stmt, CASE_ORDER, DiscrepancyCase.id,
                       request.args.get("cursor"), current_app.config["LIST_PAGE_SIZE"],
                       options=loading.qa_listed_case_rows())
    total, capped = capped_count(db.session, stmt, current_app.config["LIST_COUNT_CAP"])
    audit.record("qa.identities_viewed", page="cases", count=len(page.items))
    db.session.commit()
    return render_template("qa/cases.html", cases=page.items, page=page, total=total,
                           capped=capped, status=status, statuses=CASE_STATUSES,
                           status_labels=STATUS_LABELS, score_labels=SCORE_LABELS)


def _case_or_404(case_id: int) -> DiscrepancyCase:
    case = db.session.get(DiscrepancyCase, case_id)
    if case is None:
        abort(404)
    return case


def _render_case(case: DiscrepancyCase, committee_form=None, decision_form=None,
                 status: int = 200):
    candidates = case_service.committee_candidates(case)
    if committee_form is None:
        committee_form = CommitteeForm(formdata=None)
    committee_form.members.choices = choices((u.id, u.full_name) for u in candidates)
    reader, reviewer = case_service.parties(case)
    read = case.review.assignment.read
    users = {u.id: u for u in db.session.scalars(sa.select(User).where(
        User.id.in_([e.by_id for e in case.events if e.by_id])))}
    return render_template(
        "qa/case_detail.html", case=case, read=read, reader=reader, reviewer=reviewer,
        view=present(read.study, "full"), committee_form=committee_form,
        decision_form=decision_form or DecisionForm(formdata=None),
        votes=case_service.visible_votes(case, current_user), users=users,
        corrected=bool(reviews_on_corrected_reads([case.review.id])),
        status_labels=STATUS_LABELS, score_labels=SCORE_LABELS,
        category_labels=CATEGORY_LABELS, marks=qa_marks(case.review.assignment),
    ), status


@bp.route("/cases/<int:case_id>")
@role_required("qa_manager")
def case_detail(case_id: int):
    case = _case_or_404(case_id)
    audit.record("qa.identities_viewed", case, page="case",
                 study_id=case.review.assignment.read.study_id)
    db.session.commit()
    return _render_case(case)


@bp.route("/cases/<int:case_id>/committee", methods=["POST"])
@role_required("qa_manager")
def case_committee(case_id: int):
    case = _case_or_404(case_id)
    form = CommitteeForm()
    form.members.choices = choices((u.id, u.full_name)
                                    for u in case_service.committee_candidates(case))
    if not form.validate_on_submit():
        return _render_case(case, committee_form=form, status=400)
    users = db.session.scalars(sa.select(User).where(User.id.in_(form.members.data or []))).all()
    try:
        case_service.assign_committee(case, users, current_user)
    except case_service.CaseError as exc:
        db.session.rollback()
        form.members.errors = [*form.members.errors, str(exc)]
        return _render_case(case, committee_form=form, status=400)
    db.session.commit()
    flash("Committee assigned; members score independently.", "success")
    return redirect(url_for("qa.case_detail", case_id=case.id))


@bp.route("/cases/<int:case_id>/decide", methods=["POST"])
@role_required("qa_manager")
def case_decide(case_id: int):
    case = _case_or_404(case_id)
    form = DecisionForm()
    if not form.validate_on_submit():
        return _render_case(case, decision_form=form, status=400)
    try:
        case_service.record_decision(case, current_user, final_score=form.final_score.data,
                                     outcome=form.outcome.data, rationale=form.rationale.data)
    except case_service.CaseError as exc:
        db.session.rollback()
        form.rationale.errors = [*form.rationale.errors, str(exc)]
        return _render_case(case, decision_form=form, status=400)
    db.session.commit()
    flash("Decision recorded; the reader has been notified.", "success")
    return redirect(url_for("qa.case_detail", case_id=case.id))



@bp.route("/cases/<int:case_id>/record", methods=["POST"])
@role_required("qa_manager")
def case_record(case_id: int):
    """Export the case's committee record as a PDF (report kind "committee"): recorded,
    verifiable and audited like every report; the browser is sent to its download."""
    case = _case_or_404(case_id)
    wants_json = request.accept_mimetypes.best == "application/json"
    try:
        export, pdf = report_service.create_export(
            "committee", {"case": case.id, "confidential": True}, current_user)
    except report_service.ReportError:
        abort(403)
    except PdfError as exc:
        db.session.rollback()
        message = f"The PDF could not be made: {exc}."
        if wants_json:
            return jsonify(error=message), 503
        flash(message, "error")
        return redirect(url_for("qa.case_detail", case_id=case.id))
    audit.record("discrepancy.record_exported", case, document_id=export.document_id,
                 sha256=export.sha256)
    db.session.commit()
    link = url_for("reports.download", document_id=export.document_id)
    if wants_json:
        return jsonify(document_id=export.document_id, download_url=link,
                       pages=export.page_count, size=export.size_bytes,
                       seconds=round(pdf.seconds, 1), title=export.title)
    flash(f"Committee record {export.document_id} is ready ({export.page_count} pages); it "
          "is listed under Reports.", "success")
    return redirect(link, code=303)
