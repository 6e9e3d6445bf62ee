"""Worklist, new request, request page and the request's workflow actions."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from qaportal import audit
from qaportal.access_prefetch import prefetched
from qaportal.auth.forms import EmptyForm
from qaportal.blind_roles import BLIND_HOLDER_REASON
from qaportal.extensions import db
from qaportal.feeds.delivery import can_resend, deliveries_of
from qaportal.forms_choices import choices
from qaportal.marks.display import opinion_marks
from qaportal.models import OpinionRequest, User
from qaportal.models.credentials import SUBSPECIALTIES, SUBSPECIALTY_LABELS
from qaportal.models.opinion import PRIORITY_LABELS
from qaportal.opinions import bp, service
from qaportal.opinions.eligibility import (
    colleagues,
    pool_members,
    request_ineligibility,
    shown_reasons,
)
from qaportal.opinions.forms import (
    AddendumForm,
    MessageForm,
    ReasonForm,
    RequestForm,
    RerouteForm,
    WorklistFilterForm,
)
from qaportal.opinions.helpers import images_url, request_or_404, study_mode
from qaportal.opinions.queries import CURSOR_PARAMS
from qaportal.opinions.queries import worklist as build_worklist
from qaportal.opinions.sla import sla_state
from qaportal.permissions import (
    can_claim_opinion_request,
    can_message_opinion_request,
    can_request_opinion,
    can_write_opinion,
    opinion_request_view,
    role_required,
)
from qaportal.studies.presenter import present, present_for
from qaportal.studies.queries import study_for


@bp.route("/")
@role_required("radiologist", "qa_manager", "admin")
def worklist():
    form = WorklistFilterForm(request.args)
    ok = form.validate()
    lists = build_worklist(
        current_user,
        priority=form.priority.data if ok else None,
        status=form.status.data if ok else None,
        modality=form.modality.data if ok else None,
        cursors={p: request.args.get(p, "") for p in CURSOR_PARAMS},
        size=current_app.config["LIST_PAGE_SIZE"],
    )
    audit.record("opinion.worklist_viewed", mine=len(lists.mine), pool=len(lists.pool),
                 sent=len(lists.sent))
    db.session.commit()
    shown = lists.mine + lists.pool + lists.sent + (lists.everyone or [])
    with prefetched(current_user, [r.study for r in shown]):
        return render_template("opinions/worklist.html", lists=lists, form=form,
                               sla_state=sla_state, args=_list_args(form if ok else None))


def _list_args(form) -> dict[str, str]:
    """The worklist's filters and every list's cursor, for its pagers' links."""
    args = {p: request.args.get(p, "") for p in CURSOR_PARAMS}
    if form is not None:
        args.update(priority=form.priority.data or "", status=form.status.data or "",
                    modality=form.modality.data or "")
    return args


def _recipient_choices(form, study, requester: User) -> tuple[list, dict]:
    """Offer eligible colleagues and pools; return who is not offered and why."""
    cands = colleagues(study, requester)
    form.colleague.choices = choices([(None, "—")] + [(c.user.id, c.user.full_name)
                                                      for c in cands if c.eligible])
    # Someone left out only for holding a blind role is not listed at all (who reviews
    # the study blind is not the requester's to know).
    not_offered = {c.user.full_name: shown_reasons(c.reasons) for c in cands
                   if shown_reasons(c.reasons) and c.user.id != requester.id}
    counts = {p: len(pool_members(study, requester.id, p)) for p in SUBSPECIALTIES}
    form.pool.choices = choices([("", "—")] + [
        (p, f"{SUBSPECIALTY_LABELS[p]} ({counts[p]} eligible)") for p in SUBSPECIALTIES
    ])
    return not_offered, counts


def _recipient(form) -> tuple[User | None, str | None]:
    if form.recipient.data == "colleague":
        return db.session.get(User, form.colleague.data), None
    return None, form.pool.data


@bp.route("/new/<int:study_id>", methods=["GET", "POST"])
@role_required("radiologist")
def new(study_id: int):
    study, mode = study_for(current_user, study_id)
    if not can_request_opinion(current_user, study):
        abort(403)
    form = RequestForm()
    not_offered, counts = _recipient_choices(form, study, current_user)
    if request.method == "GET":
        form.clinical_question.data = study.clinical_question
        form.clinical_history.data = study.clinical_history
        if study.read is not None:
            form.preliminary_read.data = study.read.report_text
    if form.validate_on_submit():
        colleague, pool = _recipient(form)
        try:
            req = service.create_request(
                study, current_user, priority=form.priority.data,
                question=form.clinical_question.data, history=form.clinical_history.data or "",
                preliminary=form.preliminary_read.data or "",
                request_type=form.request_type.data, criteria=form.payer_criteria.data or "",
                colleague=colleague, pool=pool, deidentified=form.deidentified.data,
            )
        except service.OpinionError as exc:
            db.session.rollback()
            form.recipient.errors = [*form.recipient.errors, str(exc)]
        else:
            db.session.commit()
            flash(f"Request #{req.id} sent. It is due in "
                  f"{current_app.config['OPINION_TARGET_HOURS'][req.priority]:g} h.", "success")
            return redirect(url_for("opinions.detail", request_id=req.id))
    audit.record("study.viewed", study, mode=mode, page="opinion_new")  # shows the read
    db.session.commit()
    return render_template(
        "opinions/new.html", form=form, study=study, view=present(study, mode),
        not_offered=not_offered, counts=counts,
        targets=current_app.config["OPINION_TARGET_HOURS"], priority_labels=PRIORITY_LABELS,
    )


def _render_detail(req: OpinionRequest, view: str, status: int = 200, **forms):
    user = current_user
    study_view = present_for(user, req.study, deidentified=study_mode(req, user) != "full"
                             ).view if view == "full" else None
    context = {
        "req": req, "view": view, "study_view": study_view, "state": sla_state(req),
        "images_url": images_url(req) if view == "full" else None,
        "is_requester": user.id == req.requester_id,
        "is_consultant": user.id == req.consultant_id,
        "can_claim": can_claim_opinion_request(user, req),
        "can_write": can_write_opinion(user, req),
        "can_message": can_message_opinion_request(user, req),
        "action_form": EmptyForm(),
        "decline_form": forms.get("decline_form") or ReasonForm(prefix="decline"),
        "cancel_form": forms.get("cancel_form") or ReasonForm(prefix="cancel"),
        "message_form": forms.get("message_form") or MessageForm(),
        "addendum_form": forms.get("addendum_form") or AddendumForm(),
        "reroute_form": forms.get("reroute_form"),
        "not_offered": {},
        "deliveries": deliveries_of(req) if view == "full" else [],
        "can_resend": view == "full" and can_resend(user, req),
        "marks": opinion_marks(req) if view == "full" else [],
    }
    if req.status == "declined" and user.id == req.requester_id:
        form = context["reroute_form"] or RerouteForm()
        context["not_offered"], _ = _recipient_choices(form, req.study, user)
        context["reroute_form"] = form
    return render_template("opinions/detail.html", **context), status


@bp.route("/<int:request_id>")
def detail(request_id: int):
    req, view = request_or_404(request_id, current_user)
    service.record_view(req, current_user, view)
    db.session.commit()
    return _render_detail(req, view)


def _back(req: OpinionRequest):
    return redirect(url_for("opinions.detail", request_id=req.id))


def _lost_claim(request_id: int):
    """Tell an eligible pool member who arrives late that someone else claimed it, and one
    left out only for holding a blind role on the study why they cannot take it."""
    req = db.session.get(OpinionRequest, request_id)
    if (req is not None and req.status == "open" and req.pool in current_user.subspecialty_names
            and request_ineligibility(current_user, req) == (BLIND_HOLDER_REASON,)):
        flash(service.BLIND_HOLDER_MESSAGE, "error")
        return redirect(url_for("opinions.worklist"))
    if (req is not None and req.pool in current_user.subspecialty_names
            and req.consultant_id not in (None, current_user.id)
            and not request_ineligibility(current_user, req)):
        flash(service.ClaimLost.message, "error")
        return redirect(url_for("opinions.worklist"))
    abort(404)


@bp.route("/<int:request_id>/claim", methods=["POST"])
def claim(request_id: int):
    if not EmptyForm().validate_on_submit():
        abort(400)
    req = db.session.get(OpinionRequest, request_id)
    if req is None or opinion_request_view(current_user, req) is None:
        return _lost_claim(request_id)
    try:
        service.claim(req, current_user)
    except service.OpinionError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        if isinstance(exc, service.ClaimLost):
            return redirect(url_for("opinions.worklist"))
        return _back(req)
    db.session.commit()
    flash(f"You claimed request #{req.id}. The study is now shared with you.", "success")
    return _back(req)


@bp.route("/<int:request_id>/accept", methods=["POST"])
def accept(request_id: int):
    req, _ = request_or_404(request_id, current_user)
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        service.accept(req, current_user)
    except service.OpinionError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return _back(req)
    db.session.commit()
    flash(f"You accepted request #{req.id}.", "success")
    return _back(req)


@bp.route("/<int:request_id>/decline", methods=["POST"])
def decline(request_id: int):
    req, view = request_or_404(request_id, current_user)
    if req.consultant_id != current_user.id:
        abort(403)
    form = ReasonForm(prefix="decline")
    if not form.validate_on_submit():
        return _render_detail(req, view, 400, decline_form=form)
    try:
        service.decline(req, current_user, form.reason.data)
    except service.OpinionError as exc:
        db.session.rollback()
        form.reason.errors.append(str(exc))
        return _render_detail(req, view, 400, decline_form=form)
    db.session.commit()
    flash(f"You declined request #{req.id}.", "info")
    return redirect(url_for("opinions.worklist"))


@bp.route("/<int:request_id>/cancel", methods=["POST"])
def cancel(request_id: int):
    req, view = request_or_404(request_id, current_user)
    if req.requester_id != current_user.id:
        abort(403)
    form = ReasonForm(prefix="cancel")
    if not form.validate_on_submit():
        return _render_detail(req, view, 400, cancel_form=form)
    try:
        service.cancel(req, current_user, form.reason.data)
    except service.OpinionError as exc:
        db.session.rollback()
        form.reason.errors.append(str(exc))
        return _render_detail(req, view, 400, cancel_form=form)
    db.session.commit()
    flash(f"Request #{req.id} was cancelled.", "info")
    return _back(req)


@bp.route("/<int:request_id>/reroute", methods=["POST"])
def reroute(request_id: int):
    req, view = request_or_404(request_id, current_user)
    if req.requester_id != current_user.id or req.status != "declined":
        abort(403)
    form = RerouteForm()
    _recipient_choices(form, req.study, current_user)
    if form.validate_on_submit():
        colleague, pool = _recipient(form)
        try:
            service.reroute(req, current_user, colleague=colleague, pool=pool)
        except service.OpinionError as exc:
            db.session.rollback()
            form.recipient.errors = [*form.recipient.errors, str(exc)]
        else:
            db.session.commit()
            flash(f"Request #{req.id} was sent again.", "success")
            return _back(req)
    return _render_detail(req, view, 400, reroute_form=form)


@bp.route("/<int:request_id>/messages", methods=["POST"])
def message(request_id: int):
    req, view = request_or_404(request_id, current_user)
    if not can_message_opinion_request(current_user, req):
        abort(403)
    form = MessageForm()
    if not form.validate_on_submit():
        return _render_detail(req, view, 400, message_form=form)
    try:
        service.post_message(req, current_user, form.body.data)
    except service.OpinionError as exc:
        db.session.rollback()
        form.body.errors.append(str(exc))
        return _render_detail(req, view, 400, message_form=form)
    db.session.commit()
    return redirect(url_for("opinions.detail", request_id=req.id, _anchor="thread"))
