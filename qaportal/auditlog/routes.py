"""Audit log views: filter, page through, export as CSV, verify the chain."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta

import sqlalchemy as sa
from flask import (
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user

from qaportal import audit
from qaportal.auditlog import bp
from qaportal.auditlog.forms import AuditFilterForm
from qaportal.auditlog.objects import describe_all
from qaportal.auth.forms import EmptyForm
from qaportal.extensions import db
from qaportal.models import AuditEvent
from qaportal.permissions import can_view_audit, role_required

CSV_COLUMNS = ["seq", "occurred_at", "actor_id", "actor_label", "action", "object_type",
               "object_id", "source_ip", "details", "prev_hash", "entry_hash"]


def _filtered(form: AuditFilterForm) -> sa.Select:
    stmt = sa.select(AuditEvent)
    if form.actor.data:
        stmt = stmt.where(AuditEvent.actor_label.ilike(f"%{form.actor.data.strip()}%"))
    if form.action.data:
        stmt = stmt.where(AuditEvent.action.like(f"{form.action.data.strip()}%"))
    if form.object_type.data:
        stmt = stmt.where(AuditEvent.object_type == form.object_type.data.strip())
    if form.object_id.data:
        stmt = stmt.where(AuditEvent.object_id == form.object_id.data.strip())
    if form.date_from.data:
        start = datetime.combine(form.date_from.data, time.min, tzinfo=UTC)
        stmt = stmt.where(AuditEvent.occurred_at >= start)
    if form.date_to.data:
        end = datetime.combine(form.date_to.data + timedelta(days=1), time.min, tzinfo=UTC)
        stmt = stmt.where(AuditEvent.occurred_at < end)
    return stmt


def _filters(form: AuditFilterForm) -> dict:
    return {k: str(v) for k, v in form.data.items() if v and k != "page"}


@bp.route("/")
@role_required("qa_manager", "admin")
def index():
    if not can_view_audit(current_user):
        abort(403)
    form = AuditFilterForm(request.args)
    form.validate()
    size = current_app.config["AUDIT_PAGE_SIZE"]
    stmt = _filtered(form)
    total = db.session.scalar(sa.select(sa.func.count()).select_from(stmt.subquery()))
    pages = max(1, -(-total // size))
    # A page out of range (negative, huge) shows the nearest page instead of a database error.
    page = min(max(form.page.data or 1, 1), pages)
    events = db.session.scalars(
        stmt.order_by(AuditEvent.seq.desc()).limit(size).offset((page - 1) * size)
    ).all()
    audit.record("audit.viewed", filters=_filters(form), page=page)
    db.session.commit()
    args = {k: v for k, v in request.args.items() if k != "page"}
    return render_template("auditlog/index.html", form=form, events=events, total=total,
                           page=page, pages=pages, args=args,
                           objects=describe_all(events, current_user))


@bp.route("/verify", methods=["POST"])
@role_required("qa_manager", "admin")
def verify():
    """Check the chain, its MACs and the anchor checkpoints now; show the verdict."""
    if not can_view_audit(current_user):
        abort(403)
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        result = audit.verify()
    except OSError:
        current_app.logger.exception("audit anchor file cannot be read")
        flash("The chain could not be checked: the anchor file cannot be read (see the "
              "server log).", "error")
        return redirect(url_for("auditlog.index"))
    if result.ok:
        try:
            audit.anchor_head(result)  # as each audit-verify run does
        except OSError:
            current_app.logger.exception("audit checkpoint not written")
    failed = {} if result.ok else {"bad_seq": result.bad_seq}
    audit.record("audit.verified", ok=result.ok, count=result.count, **failed)
    db.session.commit()
    flash(result.line(), "success" if result.ok else "error")
    return redirect(url_for("auditlog.index"))


@bp.route("/export.csv")
@role_required("qa_manager", "admin")
def export():
    if not can_view_audit(current_user):
        abort(403)
    form = AuditFilterForm(request.args)
    form.validate()
    stmt = _filtered(form).order_by(AuditEvent.seq).execution_options(yield_per=1000)
    audit.record("audit.exported", filters=_filters(form))
    db.session.commit()

    def rows() -> Iterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(CSV_COLUMNS)
        for ev in db.session.scalars(stmt):
            writer.writerow([_csv_value(ev, c) for c in CSV_COLUMNS])
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
        yield buf.getvalue()

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Response(
        stream_with_context(rows()), mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.csv"'},
    )


def _csv_value(ev: AuditEvent, column: str) -> str:
    import json

    value = getattr(ev, column)
    if column == "details":
        return json.dumps(value, sort_keys=True)
    if isinstance(value, datetime):
        return value.isoformat()
    text = "" if value is None else str(value)
    # Keep spreadsheet programs from evaluating cells as formulas.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
