"""Sampling rules: define, preview a seeded draw, commit it, look back at runs."""

from __future__ import annotations

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from wtforms import SelectChoice

from qaportal import audit
from qaportal.extensions import db
from qaportal.forms_choices import choices
from qaportal.models import SamplingRule, SamplingRun, User, UserRole
from qaportal.models.review import METHOD_LABELS
from qaportal.permissions import role_required
from qaportal.qa import bp, sampling
from qaportal.qa.forms import RuleForm, RunForm
from qaportal.qa.service import save_rule


def _rule_or_404(rule_id: int) -> SamplingRule:
    rule = db.session.get(SamplingRule, rule_id)
    if rule is None:
        abort(404)
    return rule


def _reader_choices() -> list[SelectChoice]:
    readers = db.session.scalars(sa.select(User).join(UserRole)
                                 .where(UserRole.role == "radiologist").order_by(User.full_name))
    return choices([(0, "Any reader")] + [(u.id, u.full_name) for u in readers])


@bp.route("/rules")
@role_required("qa_manager")
def rules():
    items = db.session.scalars(sa.select(SamplingRule).order_by(SamplingRule.active.desc(),
                                                                SamplingRule.name)).all()
    audit.record("qa.rules_viewed", count=len(items))
    db.session.commit()
    return render_template("qa/rules.html", rules=items, method_labels=METHOD_LABELS)


@bp.route("/rules/new", methods=["GET", "POST"])
@bp.route("/rules/<int:rule_id>/edit", methods=["GET", "POST"])
@role_required("qa_manager")
def rule_form(rule_id: int | None = None):
    rule = _rule_or_404(rule_id) if rule_id else None
    form = RuleForm(obj=rule)
    form.reader_id.choices = _reader_choices()
    if request.method == "GET" and rule is not None:
        form.reader_id.data = rule.reader_id or 0
        form.subspecialty.data = rule.subspecialty or ""
        form.modality.data = rule.modality or ""
    if form.validate_on_submit():
        rule = save_rule(rule, form.data_for_service(), by=current_user)
        db.session.commit()
        flash("Rule saved. Preview a run to see what it selects.", "success")
        return redirect(url_for("qa.run_preview", rule_id=rule.id))
    return render_template("qa/rule_form.html", form=form, rule=rule)


def _seed_arg() -> int | None:
    raw = request.values.get("seed", "").strip()
    if not raw:
        return None
    try:
        seed = int(raw)
    except ValueError:
        return None
    return seed if 0 < seed < 2**62 else None


@bp.route("/rules/<int:rule_id>/run", methods=["GET", "POST"])
@role_required("qa_manager")
def run_preview(rule_id: int):
    rule = _rule_or_404(rule_id)
    form = RunForm()
    if request.method == "POST":
        seed = _seed_arg()
        if form.validate_on_submit() and seed is not None:
            try:
                run = sampling.commit_run(rule, seed, current_user,
                                          fingerprint=form.fingerprint.data)
            except sampling.SamplingError as exc:
                db.session.rollback()
                flash(str(exc), "error")
            else:
                db.session.commit()
                flash(f"Run committed: {len(run.assignments)} reviews assigned.", "success")
                return redirect(url_for("qa.run_detail", run_id=run.id))
        else:
            flash("The run could not be committed; preview it again.", "error")
    seed = _seed_arg() or sampling.new_seed()
    preview = sampling.preview_run(rule, seed)
    form = RunForm(formdata=None, seed=str(seed), fingerprint=preview.fingerprint)
    audit.record("qa.run_previewed", rule, seed=seed, selected=len(preview.selected))
    db.session.commit()
    return render_template("qa/run_preview.html", rule=rule, preview=preview, form=form,
                           method_labels=METHOD_LABELS)


@bp.route("/runs/<int:run_id>")
@role_required("qa_manager")
def run_detail(run_id: int):
    run = db.session.get(SamplingRun, run_id)
    if run is None:
        abort(404)
    replayed = sampling.replay_run(run)
    audit.record("qa.identities_viewed", run, page="run")
    db.session.commit()
    return render_template("qa/run_detail.html", run=run, reproduced=replayed == run.selected,
                           method_labels=METHOD_LABELS, parameters=param_rows(run.params))


def param_rows(params: dict) -> list[tuple[str, str]]:
    """Return a run's recorded parameters as (label, value) rows a QA manager can read."""
    from qaportal.models.credentials import SUBSPECIALTY_LABELS

    method = params.get("method")
    how = {"percent": f"{params.get('percent')} % of eligible reads",
           "every_nth": f"every {params.get('every_n')}th eligible read",
           "per_reader_month": f"up to {params.get('per_reader')} reads per reader per month",
           }.get(method, METHOD_LABELS.get(method, str(method)))
    reader = db.session.get(User, params["reader_id"]) if params.get("reader_id") else None
    start, end = params.get("period_start"), params.get("period_end")
    period = (f"{start or 'the first read'} – {end or 'today'}" if start or end
              else "every finalized read")
    sub = params.get("subspecialty")
    return [
        ("Sample", how),
        ("Modality", params.get("modality") or "any"),
        ("Reader", reader.full_name if reader else "any"),
        ("Reads finalized", period),
        ("Reviewers", f"{SUBSPECIALTY_LABELS.get(sub, sub)} subspecialty" if sub else "any"),
        ("Images for reviewers", "de-identified" if params.get("deidentify") else
         "identified"),
        ("Reviews due", f"{params.get('due_days')} days after assignment"),
    ]
