"""Committee members' blinded scoring, the reader's feedback, conference pages for attendees."""

from __future__ import annotations

from collections.abc import Callable

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from qaportal import audit
from qaportal.access_prefetch import prefetched
from qaportal.extensions import db
from qaportal.marks.display import committee_marks
from qaportal.models import (
    Conference,
    DiscrepancyCase,
    Review,
)
from qaportal.models.discrepancy import STATUS_LABELS
from qaportal.models.review import CATEGORY_LABELS, SCORE_LABELS
from qaportal.permissions import (
    can_score_case,
    can_see_feedback,
    can_view_conference,
    role_required,
    study_access_mode,
)
from qaportal.qa import cases as case_service
from qaportal.reviews import bp, conference_lists, lists
from qaportal.reviews.blinding import blind_case, scrub
from qaportal.reviews.forms import FeedbackForm, VoteForm
from qaportal.studies import scrubber
from qaportal.studies.presenter import present_for


def _case_or_404(case_id: int, check) -> DiscrepancyCase:
    case = db.session.get(DiscrepancyCase, case_id)
    if case is None or not check(current_user, case):
        abort(404)
    return case


def _member_labels(case: DiscrepancyCase) -> dict[int, str]:
    """Label committee members anonymously (Member A, B...), the viewer as "You"."""
    labels = {}
    for i, m in enumerate(case.members):
        labels[m.user_id] = "You" if m.user_id == current_user.id else f"Member {chr(65 + i)}"
    return labels


@bp.route("/committee")
@role_required("reviewer", "radiologist")
def committee_list():
    page = lists.seats_page(current_user.id, request.args.get("cursor"))
    rows = [(m.case, case_service.own_vote(m.case, current_user)) for m in page.items]
    audit.record("discrepancy.committee_list_viewed", count=len(rows))
    db.session.commit()
    return render_template("reviews/committee_list.html", rows=rows, page=page,
                           status_labels=STATUS_LABELS)


def _render_committee(case: DiscrepancyCase, form=None, status: int = 200):
    assignment = case.review.assignment
    reader, reviewer = case_service.parties(case)
    hide = [reviewer, *[m.user for m in case.members]]
    # The committee always sees the case de-identified: every typed field goes through the
    # same presenter as the study header (patient identifiers and the people's names).
    blind = blind_case(current_user, assignment.read, deidentified=True, hide=[reader, *hide])
    text = blind.text
    review = case.review.effective
    labels = _member_labels(case)
    votes = [(labels.get(v.user_id, "Member"), v, text(v.comment))
             for v in case_service.visible_votes(case, current_user)]
    return render_template(
        "reviews/committee.html", case=case, blind=blind, review=review,
        review_comment=text(review.comment),
        impression=text(assignment.impression),
        dispute=text(case.reader_response) if case.disputed_at else "",
        votes=votes, own=case_service.own_vote(case, current_user),
        all_voted=case.all_voted(), form=form or VoteForm(formdata=None),
        score_labels=SCORE_LABELS, category_labels=CATEGORY_LABELS,
        status_labels=STATUS_LABELS, marks=committee_marks(assignment),
    ), status


@bp.route("/committee/<int:case_id>")
@role_required("reviewer", "radiologist")
def committee(case_id: int):
    case = _case_or_404(case_id, can_score_case)
    audit.record("discrepancy.viewed", case, role="committee",
                 study_id=case.review.assignment.read.study_id)
    db.session.commit()
    return _render_committee(case)


@bp.route("/committee/<int:case_id>/vote", methods=["POST"])
@role_required("reviewer", "radiologist")
def vote(case_id: int):
    case = _case_or_404(case_id, can_score_case)
    form = VoteForm()
    if not form.validate_on_submit():
        return _render_committee(case, form=form, status=400)
    try:
        case_service.cast_vote(case, current_user, form.score.data, form.comment.data or "")
    except case_service.CaseError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        db.session.commit()
        flash("Your score is recorded.", "success")
    return redirect(url_for("reviews.committee", case_id=case.id))


@bp.route("/feedback")
@role_required("radiologist")
def feedback_list():
    page = lists.feedback_page(current_user.id, request.args.get("cursor"))
    cases = page.items
    studies = [c.review.assignment.read.study for c in cases]
    with prefetched(current_user, studies):
        rows = [(c, present_for(current_user, study, deidentified=True).view)
                for c, study in zip(cases, studies, strict=True)]
    audit.record("discrepancy.feedback_list_viewed", count=len(rows))
    db.session.commit()
    return render_template("reviews/feedback_list.html", rows=rows, page=page,
                           status_labels=STATUS_LABELS, score_labels=SCORE_LABELS)


def _render_feedback(case: DiscrepancyCase, form=None, status: int = 200):
    assignment = case.review.assignment
    read = assignment.read
    _, reviewer = case_service.parties(case)
    people = [reviewer, *[m.user for m in case.members]]
    mode = study_access_mode(current_user, read.study) or "deidentified"
    # While a dispute is re-scored the reader sees the standing decision, labelled as such,
    # and none of the new round's comments until its decision is recorded.
    comments = [scrub(v.comment, people) for v in case_service.decided_votes(case)
                if v.comment]
    return render_template(
        "reviews/feedback.html", case=case, read=read,
        view=present_for(current_user, read.study, deidentified=mode != "full").view,
        can_open_study=study_access_mode(current_user, read.study) is not None,
        category=case.review.effective.category, comments=comments,
        rationale=scrub(case.rationale, people), form=form or FeedbackForm(formdata=None),
        score_labels=SCORE_LABELS, category_labels=CATEGORY_LABELS,
        status_labels=STATUS_LABELS, rereview=case_service.under_rereview(case),
        decided_round=case_service.decided_round(case),
    ), status


@bp.route("/feedback/<int:case_id>")
@role_required("radiologist")
def feedback(case_id: int):
    case = _case_or_404(case_id, can_see_feedback)
    audit.record("discrepancy.feedback_viewed", case,
                 study_id=case.review.assignment.read.study_id)
    db.session.commit()
    return _render_feedback(case)


@bp.route("/feedback/<int:case_id>/respond", methods=["POST"])
@role_required("radiologist")
def respond(case_id: int):
    case = _case_or_404(case_id, can_see_feedback)
    form = FeedbackForm()
    if not form.validate_on_submit() or not (form.acknowledge.data or form.dispute.data):
        return _render_feedback(case, form=form, status=400)
    try:
        if form.dispute.data:
            case_service.dispute(case, current_user, form.response.data or "")
            message = "Your dispute was sent back to the committee."
        else:
            case_service.acknowledge(case, current_user, form.response.data or "")
            message = "Feedback acknowledged. The case is closed."
    except case_service.CaseError as exc:
        db.session.rollback()
        form.response.errors = [*form.response.errors, str(exc)]
        return _render_feedback(case, form=form, status=400)
    db.session.commit()
    flash(message, "success")
    return redirect(url_for("reviews.feedback", case_id=case.id))


@bp.route("/conferences")
def conference_list():
    page = conference_lists.conferences_page(current_user.id, request.args.get("cursor"))
    reviews = conference_lists.load_agendas(page.items)
    rows = [(c, _agenda(c, reviews)[1](c.title)) for c in page.items]
    audit.record("learning.conference_list_viewed", count=len(rows))
    db.session.commit()
    return render_template("reviews/conferences.html", rows=rows, page=page)


@bp.route("/conferences/<int:conference_id>")
def conference(conference_id: int):
    conf = db.session.get(Conference, conference_id)
    if conf is None or not can_view_conference(current_user, conf):
        abort(404)
    items, conf_text = _agenda(conf, conference_lists.load_agendas([conf]))
    audit.record("learning.conference_viewed", conf)
    db.session.commit()
    return render_template("reviews/conference.html", conf=conf, items=items,
                           title=conf_text(conf.title),
                           learning_points=conf_text(conf.learning_points),
                           improvement_actions=conf_text(conf.improvement_actions),
                           category_labels=CATEGORY_LABELS)


def _agenda(conf: Conference, reviews: dict[int, Review]
            ) -> tuple[list, Callable[[str | None], str]]:
    """Return the agenda as an attendee sees it, each teaching case through the study
    presenter (de-identified, blind), and the scrubber of the conference's own text (title,
    learning points, actions), which may speak of any case on it. reviews: the teaching
    cases' reviews by id (conference_lists.load_agendas)."""
    items, texts = [], []
    for item in conf.cases:
        tc = item.teaching_case
        text = present_for(current_user, tc.study, deidentified=True, blind=True,
                           hide=_teaching_people(tc, reviews)).text
        texts.append(text)
        items.append((tc, text(tc.title), text(tc.teaching_point)))
    return items, scrubber.chain(*texts)


def _teaching_people(tc, reviews: dict[int, Review]) -> list:
    """Return the people a teaching case must not name: reader, reviewer, committee."""
    review = reviews.get(tc.review_id) if tc.review_id else None
    if review is None:
        return []
    people = [review.assignment.read.reader, review.assignment.reviewer]
    if review.case is not None:
        people += [m.user for m in review.case.members]
    return people
