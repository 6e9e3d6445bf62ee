"""Audit log views: filter, page through, export as CSV, verify the chain."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

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
from qaportal.auditlog import bp, query
from qaportal.auditlog.forms import AuditFilterForm
from qaportal.auditlog.objects import describe_all
from qaportal.auth.forms import EmptyForm
from qaportal.extensions import db
from qaportal.models import AuditEvent
from qaportal.paging import Key, capped_count, keyset_page
from qaportal.permissions import can_view_audit, role_required


def _filtered(form: AuditFilterForm) -> sa.Select:
    return query.filtered(form.data)


def _filters(form: AuditFilterForm) -> dict:
    return {k: str(v) for k, v in form.data.items() if v and k != "cursor"}


@bp.route("/")
@role_required("qa_manager", "admin")
def index():
    if not can_view_audit(current_user):
        abort(403)
    form = AuditFilterForm(request.args)
    form.validate()
    size = current_app.config["AUDIT_PAGE_SIZE"]
    stmt = _filtered(form)
    # Newest first by seq (unique): pages by keyset, a count capped where it would cost.
    page = keyset_page(db.session, stmt, [Key(AuditEvent.seq, desc=True)], AuditEvent.seq,
                       form.cursor.data, size)
    total, capped = capped_count(db.session, stmt, current_app.config["LIST_COUNT_CAP"])
    audit.record("audit.viewed", filters=_filters(form), first_page=page.first,
                 count=len(page.items))
    db.session.commit()
    args = {k: v for k, v in request.args.items() if k != "cursor"}
    return render_template("auditlog/index.html", form=form, events=page.items, total=total,
                           capped=capped, page=page, args=args,
                           objects=describe_all(page.items, current_user))


@bp.route("/verify", methods=["POST"])
@role_required("qa_manager", "admin")
def verify():
    """Check the chain, its MACs and the anchor checkpoints now; show the verdict.

    scope=new (the default button) checks only what was written after the last verified
    checkpoint: quick on any size of log. scope=all re-reads every entry (about a minute
    at 2M entries on PostgreSQL; `qaportal audit-verify` does the same from a schedule).
    """
    if not can_view_audit(current_user):
        abort(403)
    if not EmptyForm().validate_on_submit():
        abort(400)
    scope = request.form.get("scope", "new")
    if scope not in ("new", "all"):
        abort(400)
    try:
        result = audit.verify(incremental=scope == "new")
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
    audit.record("audit.verified", ok=result.ok, count=result.count, scope=scope,
                 since=result.since, **failed)
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
    limit = current_app.config["AUDIT_CSV_DIRECT_MAX"]
    if capped_count(db.session, _filtered(form), limit)[1]:
        flash(f"More than {limit:,} entries match: too many to send at once. Use “Prepare "
              "the CSV in the background”, or narrow the filters.", "error")
        return redirect(url_for("auditlog.index", **_filters(form)))
    stmt = query.csv_columns(_filtered(form).order_by(AuditEvent.seq))
    audit.record("audit.exported", filters=_filters(form))
    db.session.commit()

    def rows() -> Iterator[str]:
        # The query runs inside the stream: a server-side cursor (yield_per on PostgreSQL)
        # lives only in its transaction, and the request's own commit or teardown before
        # the body is sent would close it. Plain rows of the CSV's columns through the
        # session's connection, written 500 entries to a piece (qaportal/auditlog/query.py).
        yield from query.csv_chunks(db.session.connection().execute(
            stmt, execution_options={"yield_per": 1000}))

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Response(
        stream_with_context(rows()), mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.csv"'},
    )


@bp.route("/export-job", methods=["POST"])
@role_required("qa_manager", "admin")
def export_job():
    """Queue a CSV of the filtered entries for the job worker; its page shows progress."""
    from qaportal.exports.service import start_audit_csv

    if not can_view_audit(current_user):
        abort(403)
    form = AuditFilterForm(request.form)
    if not form.validate():
        abort(400)
    job = start_audit_csv(current_user, form.data)
    db.session.commit()
    return redirect(url_for("exports.job", job_id=job.id))
