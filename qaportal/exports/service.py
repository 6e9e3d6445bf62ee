"""Long exports in the job queue: start one, run it in the worker, find it for its owner.

A web request only records the job (one row, audited) and queues it after the commit; the
worker (`qaportal worker`) makes the file, reporting progress on a connection of its own
(its reading transaction stays open until the end), so nothing runs inside a web worker's
timeout. An audit CSV is written to a temporary file, fsynced and renamed into
EXPORT_ROOT/jobs/; its SHA-256 is recorded and checked before each download. A report
becomes a recorded PDF export (qaportal.reports.service.create_export) like any other.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import abort, current_app

from qaportal import audit
from qaportal.extensions import db
from qaportal.jobs import enqueue_after_commit
from qaportal.models import AuditEvent, ExportJob, User, utcnow

PROGRESS_EVERY = 20_000  # rows between progress updates of an audit CSV
WORKER = "job worker"  # the audit log's actor label for what the worker does


class ExportError(RuntimeError):
    """The export cannot be made as asked; the message is for its owner."""


def start_audit_csv(user: User, filters: dict[str, Any]) -> ExportJob:
    """Record and (after the commit) queue an audit CSV of the filtered entries."""
    from qaportal.auditlog.query import FILTERS

    params = {k: (v.isoformat() if isinstance(v, date) else str(v).strip())
              for k, v in filters.items() if k in FILTERS and v not in (None, "")}
    return _start(user, "audit_csv", None, params)


def start_report(user: User, kind: str, params: dict[str, Any]) -> ExportJob:
    """Record and (after the commit) queue a PDF report with validated parameters."""
    from qaportal.reports.service import params_json

    return _start(user, "report", kind, params_json(params))


def _start(user: User, kind: str, report_kind: str | None, params: dict) -> ExportJob:
    job = ExportJob(kind=kind, report_kind=report_kind, parameters=params,
                    requested_by_id=user.id, status="queued", progress=0, rows_done=0)
    db.session.add(job)
    db.session.flush()
    audit.record("export.queued", job, actor=user, kind=kind, report=report_kind,
                 parameters=params)
    enqueue_after_commit(db.session, "export", job.id)
    return job


def job_for(user: User, job_id: int) -> ExportJob:
    """The job if this user asked for it; 404 otherwise (another's job is never shown)."""
    job = db.session.get(ExportJob, job_id)
    if job is None or job.requested_by_id != user.id:
        abort(404)
    return job


def _set(job_id: int, **values: Any) -> None:
    """Write job fields on a connection of their own, committed at once."""
    with db.engine.begin() as conn:
        conn.execute(sa.update(ExportJob).where(ExportJob.id == job_id).values(**values))


def run(job_id: int) -> None:
    """Make the export (called by the worker); a failure is recorded on the job."""
    with db.engine.begin() as conn:  # take it: queued -> running, once
        taken = conn.execute(
            sa.update(ExportJob).where(ExportJob.id == job_id, ExportJob.status == "queued")
            .values(status="running", started_at=utcnow(), progress=1)).rowcount
    if not taken:
        current_app.logger.info("export job %s is not queued; nothing to do", job_id)
        return
    job = db.session.get(ExportJob, job_id)
    try:
        if job.kind == "audit_csv":
            _run_audit_csv(job)
        else:
            _run_report(job)
    except Exception as exc:  # noqa: BLE001 - recorded on the job for its owner to see
        db.session.rollback()
        current_app.logger.exception("export job %s failed", job_id)
        message = str(exc) if isinstance(exc, ExportError) else (
            f"The export could not be made ({type(exc).__name__}); see the server log.")
        _set(job_id, status="failed", message=message[:500], finished_at=utcnow())
        audit.record("export.failed", (ExportJob.__tablename__, job_id),
                     actor_label=WORKER, kind=job.kind, requested_by=job.requested_by_id)
        db.session.commit()


def _run_audit_csv(job: ExportJob) -> None:
    from qaportal.auditlog.query import csv_lines, filtered

    stmt = filtered(job.parameters)
    total = db.session.scalar(sa.select(sa.func.count()).select_from(stmt.subquery()))
    _set(job.id, rows_total=total)
    key = f"jobs/{utcnow():%Y/%m}/audit-{job.id}-{secrets.token_hex(8)}.csv"
    path = Path(current_app.config["EXPORT_ROOT"]) / key
    path.parent.mkdir(parents=True, exist_ok=True)
    digest, size, done = hashlib.sha256(), 0, 0
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".csv")
    try:
        with os.fdopen(fd, "wb") as fh:
            events = db.session.scalars(stmt.order_by(AuditEvent.seq)
                                        .execution_options(yield_per=2000))
            for line in csv_lines(events):
                data = line.encode("utf-8")
                fh.write(data)
                digest.update(data)
                size += len(data)
                done += 1
                if done % PROGRESS_EVERY == 0:
                    rows = done - 1  # the header is the first line
                    _set(job.id, rows_done=rows,
                         progress=max(1, min(99, rows * 100 // max(total, 1))))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    db.session.rollback()  # end the reading transaction before the final write
    rows = max(done - 1, 0)  # the first piece carries the header with the first row
    _set(job.id, status="done", progress=100, rows_done=rows, storage_key=key,
         sha256=digest.hexdigest(), size_bytes=size, finished_at=utcnow())
    audit.record("export.done", (ExportJob.__tablename__, job.id), actor_label=WORKER,
                 kind=job.kind, rows=rows, sha256=digest.hexdigest(),
                 requested_by=job.requested_by_id)
    db.session.commit()


def _run_report(job: ExportJob) -> None:
    from werkzeug.datastructures import MultiDict

    from qaportal.pdf import PdfError
    from qaportal.reports.registry import REPORTS
    from qaportal.reports.service import ReportError, bind_form, create_export

    definition = REPORTS[job.report_kind]
    data = MultiDict()
    for name, value in job.parameters.items():
        if value is None or value is False:
            continue
        data.add(name, "y" if value is True else str(value))
    form = bind_form(definition, data)
    if not form.validate():
        raise ExportError("The report's parameters are no longer valid: "
                          + "; ".join(f"{k}: {', '.join(v)}" for k, v in form.errors.items()))
    user = db.session.get(User, job.requested_by_id)
    _set(job.id, progress=10)
    try:
        export, _pdf = create_export(job.report_kind, form.params(), user)
    except (ReportError, PdfError) as exc:
        raise ExportError(str(exc)) from exc
    export_id = export.id
    db.session.commit()
    _set(job.id, status="done", progress=100, report_export_id=export_id,
         finished_at=utcnow())


def sweep() -> None:
    """Queue again the jobs still waiting (a job lost on the way to the queue is found;
    a second copy of one still queued does nothing), and fail those a dead worker left
    running longer than EXPORT_JOB_MAX_HOURS."""
    from datetime import timedelta

    from qaportal.jobs import queue

    now = utcnow()
    waiting = db.session.scalars(sa.select(ExportJob.id).where(
        ExportJob.status == "queued", ExportJob.created_at < now - timedelta(minutes=2))).all()
    limit = now - timedelta(hours=float(current_app.config["EXPORT_JOB_MAX_HOURS"]))
    dead = db.session.scalars(sa.select(ExportJob.id).where(
        ExportJob.status == "running", ExportJob.started_at < limit)).all()
    for job_id in dead:
        _set(job_id, status="failed", finished_at=now,
             message="The job worker stopped while making it; please ask again.")
        audit.record("export.failed", (ExportJob.__tablename__, job_id), actor_label=WORKER,
                     reason="worker stopped")
    db.session.commit()
    for job_id in waiting:
        queue().enqueue("export", job_id)
