"""Peer learning for QA managers: teaching cases and conferences."""

from __future__ import annotations

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.orm import selectinload

from qaportal import audit
from qaportal.extensions import db
from qaportal.forms_choices import choices
from qaportal.models import (
    Conference,
    ConferenceAttendee,
    ConferenceCase,
    Review,
    TeachingCase,
    User,
    UserRole,
)
from qaportal.models.review import CATEGORY_LABELS, SCORE_LABELS
from qaportal.paging import Key, capped_count, keyset_page
from qaportal.permissions import role_required
from qaportal.qa import bp, learning
from qaportal.qa.forms import AgendaForm, ConferenceForm, InviteForm, MinutesForm, TeachingForm
from qaportal.reviews import conference_lists

TEACHING_ORDER = (Key(TeachingCase.id, desc=True),)


@bp.route("/teaching")
@role_required("qa_manager")
def teaching():
    size = conference_lists.page_size()
    page = keyset_page(db.session, sa.select(TeachingCase), TEACHING_ORDER, TeachingCase.id,
                       request.args.get("cursor"), size)
    candidates = learning.learning_candidates(limit=size)
    candidate_total = capped_count(db.session, learning.candidates_stmt())
    audit.record("learning.teaching_list_viewed", count=len(page.items),
                 candidates=len(candidates))
    db.session.commit()
    return render_template("qa/teaching.html", cases=page.items, page=page,
                           candidates=candidates, candidate_total=candidate_total,
                           category_labels=CATEGORY_LABELS, score_labels=SCORE_LABELS)


@bp.route("/teaching/new/<int:review_id>", methods=["GET", "POST"])
@role_required("qa_manager")
def teaching_new(review_id: int):
    review = db.session.get(Review, review_id)
    if review is None:
        abort(404)
    refusal = learning.teaching_refusal(review)
    if refusal is not None:
        flash(f"Review {review.id} cannot become a teaching case. {refusal}", "error")
        return redirect(url_for("qa.teaching"))
    eff = review.effective
    form = TeachingForm(category=eff.category or "") if request.method == "GET" \
        else TeachingForm()
    if form.validate_on_submit():
        try:
            tc = learning.create_teaching_case(
                review.assignment.read.study, current_user, title=form.title.data,
                teaching_point=form.teaching_point.data, category=form.category.data or None,
                review=review)
        except learning.LearningError as exc:
            db.session.rollback()
            form.teaching_point.errors = [*form.teaching_point.errors, str(exc)]
        else:
            db.session.commit()
            flash(f"Teaching case {tc.id} created.", "success")
            return redirect(url_for("qa.teaching"))
    return render_template("qa/teaching_new.html", review=review, form=form,
                           score_labels=SCORE_LABELS, category_labels=CATEGORY_LABELS)


@bp.route("/conferences", methods=["GET", "POST"])
@role_required("qa_manager")
def conferences():
    form = ConferenceForm()
    if form.validate_on_submit():
        conf = learning.create_conference(current_user, title=form.title.data,
                                          held_on=form.held_on.data)
        db.session.commit()
        flash("Conference created.", "success")
        return redirect(url_for("qa.conference", conference_id=conf.id))
    page = conference_lists.all_conferences_page(request.args.get("cursor"))
    audit.record("learning.conference_list_viewed", count=len(page.items), page="qa")
    db.session.commit()
    return render_template("qa/conferences.html", conferences=page.items, page=page, form=form)


def _conference_forms(conf: Conference, agenda=None, invite=None, minutes=None):
    on_agenda = {c.teaching_case_id for c in conf.cases}
    agenda = agenda or AgendaForm(formdata=None)
    # Choices read two columns, not whole rows: every teaching case and every active
    # radiologist or reviewer is a choice (a department has hundreds, not millions).
    agenda.teaching_case_id.choices = choices(
        (tid, f"#{tid} {title}") for tid, title in db.session.execute(
            sa.select(TeachingCase.id, TeachingCase.title).order_by(TeachingCase.id.desc()))
        if tid not in on_agenda)
    invite = invite or InviteForm(formdata=None)
    invited = {a.user_id for a in conf.attendees}
    invite.users.choices = choices(
        (uid, name) for uid, name in db.session.execute(
            sa.select(User.id, User.full_name).join(UserRole)
            .where(UserRole.role.in_(("radiologist", "reviewer")), User.active.is_(True))
            .order_by(User.full_name).distinct()) if uid not in invited)
    if minutes is None:
        minutes = MinutesForm(formdata=None, learning_points=conf.learning_points,
                              improvement_actions=conf.improvement_actions,
                              attended=[a.user_id for a in conf.attendees if a.attended])
    minutes.attended.choices = choices((a.user_id, a.user.full_name) for a in conf.attendees)
    return agenda, invite, minutes


def _conference_or_404(conference_id: int) -> Conference:
    """The conference with its agenda and attendees loaded (one query each, not per row)."""
    conf = db.session.scalar(sa.select(Conference).where(Conference.id == conference_id).options(
        selectinload(Conference.cases).selectinload(ConferenceCase.teaching_case),
        selectinload(Conference.attendees).selectinload(ConferenceAttendee.user)))
    if conf is None:
        abort(404)
    return conf


@bp.route("/conferences/<int:conference_id>", methods=["GET", "POST"])
@role_required("qa_manager")
def conference(conference_id: int):
    conf = _conference_or_404(conference_id)
    forms = {"agenda": None, "invite": None, "minutes": None}
    if request.method == "POST":
        which = request.form.get("form")
        if which not in forms:
            abort(400)
        form = {"agenda": AgendaForm, "invite": InviteForm, "minutes": MinutesForm}[which]()
        forms[which] = form
        agenda, invite, minutes = _conference_forms(conf, **forms)
        if form.validate_on_submit():
            try:
                if which == "agenda":
                    tc = db.session.get(TeachingCase, form.teaching_case_id.data)
                    learning.add_case(conf, tc, current_user)
                elif which == "invite":
                    users = db.session.scalars(
                        sa.select(User).where(User.id.in_(form.users.data or []))).all()
                    learning.invite(conf, users, current_user)
                else:
                    learning.record_minutes(
                        conf, current_user, attended_ids=form.attended.data or [],
                        learning_points=form.learning_points.data,
                        improvement_actions=form.improvement_actions.data)
            except learning.LearningError as exc:
                db.session.rollback()
                flash(str(exc), "error")
            else:
                db.session.commit()
                flash("Saved.", "success")
            return redirect(url_for("qa.conference", conference_id=conf.id))
        status = 400
    else:
        agenda, invite, minutes = _conference_forms(conf)
        status = 200
    audit.record("learning.conference_viewed", conf)
    db.session.commit()
    return render_template("qa/conference.html", conf=conf, agenda=agenda, invite=invite,
                           minutes=minutes, category_labels=CATEGORY_LABELS), status
