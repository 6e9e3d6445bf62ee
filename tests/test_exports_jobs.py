"""Long exports in the job queue: an audit CSV too large to stream, a report over more
than a year. The web request records and queues; the worker's code makes the file; only
the person who asked sees the job and downloads the result, checked against its SHA-256."""

from __future__ import annotations

import re
from datetime import date, timedelta

import sqlalchemy as sa

from qaportal import audit
from qaportal.exports import service
from qaportal.extensions import db
from qaportal.models import AuditEvent, ExportJob, ReportExport, utcnow
from qaportal.reports.service import verify_file
from tests.factories import make_user
from tests.report_world import build_world


def _seed(qa, n: int = 30) -> None:
    for i in range(n):
        if i == 3:  # a label a spreadsheet would run as a formula
            audit.record("bulk.event", qa, actor_label="=SUM(A1)", n=i)
        else:
            audit.record("bulk.event", qa, actor=qa, n=i)
    db.session.commit()


def _job_id(resp) -> int:
    assert resp.status_code == 302, resp.data
    return int(re.search(r"/exports/(\d+)$", resp.headers["Location"]).group(1))


def test_audit_csv_in_the_background_equals_the_streamed_one(client, login_as):
    qa = login_as("qa_manager")
    _seed(qa)
    job_id = _job_id(client.post("/audit/export-job", data={"action": "bulk."}))
    job = db.session.get(ExportJob, job_id)
    assert (job.status, job.kind, job.parameters) == ("queued", "audit_csv",
                                                      {"action": "bulk."})
    page = client.get(f"/exports/{job_id}").get_data(as_text=True)
    assert "Waiting for the job worker" in page and 'data-status="queued"' in page
    assert client.get(f"/exports/{job_id}/download").status_code == 409

    service.run(job_id)  # what `qaportal worker` calls
    db.session.expire_all()
    job = db.session.get(ExportJob, job_id)
    assert (job.status, job.progress, job.rows_done, job.rows_total) == ("done", 100, 30, 30)
    status = client.get(f"/exports/{job_id}/status").get_json()
    assert status["download_url"] == f"/exports/{job_id}/download"
    background = client.get(status["download_url"])
    assert background.status_code == 200 and background.mimetype == "text/csv"
    assert "no-store" in background.headers["Cache-Control"]
    streamed = client.get("/audit/export.csv", query_string={"action": "bulk."})
    assert background.data == streamed.data
    assert b"'=SUM(A1)" in background.data  # formulas defused the same way
    actions = [e.action for e in db.session.scalars(
        sa.select(AuditEvent).order_by(AuditEvent.seq)) if e.action.startswith("export.")]
    assert actions == ["export.queued", "export.done"]
    downloaded = db.session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "audit.exported", AuditEvent.object_type == "export_jobs")).all()
    assert len(downloaded) == 1 and downloaded[0].details["background"] is True


def test_only_the_requester_sees_the_job(client, auth, login_as):
    qa = login_as("qa_manager")
    _seed(qa, 3)
    job_id = _job_id(client.post("/audit/export-job", data={}))
    service.run(job_id)
    other = make_user(["qa_manager"])
    admin = make_user(["admin"])
    db.session.commit()
    for intruder in (other, admin):
        auth.logout()
        auth.login(intruder)
        for url in (f"/exports/{job_id}", f"/exports/{job_id}/status",
                    f"/exports/{job_id}/download"):
            assert client.get(url).status_code == 404, url
        assert f"/exports/{job_id}" not in client.get("/exports/").get_data(as_text=True)


def test_a_damaged_file_is_not_served(app, client, login_as):
    qa = login_as("qa_manager")
    _seed(qa, 3)
    job_id = _job_id(client.post("/audit/export-job", data={}))
    service.run(job_id)
    job = db.session.get(ExportJob, job_id)
    path = f"{app.config['EXPORT_ROOT']}/{job.storage_key}"
    with open(path, "ab") as fh:
        fh.write(b"1,forged\r\n")
    assert client.get(f"/exports/{job_id}/download").status_code == 410
    assert db.session.scalar(sa.select(sa.func.count()).where(
        AuditEvent.action == "export.file_damaged")) == 1


def test_too_many_entries_to_stream_point_to_the_background(app, client, login_as):
    qa = login_as("qa_manager")
    _seed(qa, 5)
    app.config["AUDIT_CSV_DIRECT_MAX"] = 3
    resp = client.get("/audit/export.csv", query_string={"action": "bulk."})
    assert resp.status_code == 302 and "action=bulk." in resp.headers["Location"]
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "More than 3 entries match" in page and "Prepare the CSV in the background" in page
    assert client.get("/audit/export.csv", query_string={"action": "nothing."}).status_code == 200


def test_a_two_year_report_is_made_by_the_worker(app, client, auth):
    w = build_world()
    auth.login(w["qa"])
    today = date.today()
    form = {"date_from": (today - timedelta(days=730)).isoformat(),
            "date_to": today.isoformat()}
    resp = client.post("/reports/department/export", data=form,
                       headers={"Accept": "application/json"})
    assert resp.status_code == 202, resp.data
    body = resp.get_json()
    assert body["status"] == "queued" and body["download_url"] is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ReportExport)) == 0
    service.run(body["id"])
    db.session.expire_all()
    status = client.get(body["status_url"]).get_json()
    assert status["status"] == "done" and status["progress"] == 100
    pdf = client.get(status["download_url"])
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert verify_file(pdf.data).export is not None
    # a year or less is made at once, as before
    form["date_from"] = (today - timedelta(days=365)).isoformat()
    resp = client.post("/reports/department/export", data=form,
                       headers={"Accept": "application/json"})
    assert resp.status_code == 200 and resp.get_json()["download_url"]
    # without JavaScript the form leads to the job's page
    form["date_from"] = (today - timedelta(days=800)).isoformat()
    resp = client.post("/reports/department/export", data=form)
    assert resp.status_code == 302 and re.search(r"/exports/\d+$", resp.headers["Location"])


def test_a_job_that_cannot_be_made_says_why(client, login_as):
    qa = login_as("qa_manager")
    job = service.start_report(qa, "department", {"date_from": "2026-01-01"})
    db.session.commit()
    service.run(job.id)
    db.session.expire_all()
    job = db.session.get(ExportJob, job.id)
    assert job.status == "failed" and "no longer valid" in job.message
    assert "date_to" in job.message
    page = client.get(f"/exports/{job.id}").get_data(as_text=True)
    assert "Failed: " in page
    service.run(job.id)  # a second delivery of the same job does nothing
    db.session.expire_all()
    assert db.session.get(ExportJob, job.id).status == "failed"


def test_sweep_fails_what_a_dead_worker_left_and_requeues_the_waiting(app, login_as):
    from qaportal.jobs import queue

    qa = login_as("qa_manager")
    stuck = service.start_audit_csv(qa, {})
    waiting = service.start_audit_csv(qa, {})
    db.session.commit()
    stuck.status, stuck.started_at = "running", utcnow() - timedelta(hours=7)
    waiting.created_at = utcnow() - timedelta(minutes=5)
    db.session.commit()
    huey = queue(app).huey
    huey.flush()
    service.sweep()
    db.session.expire_all()
    assert db.session.get(ExportJob, stuck.id).status == "failed"
    assert "worker stopped" in db.session.get(ExportJob, stuck.id).message
    assert huey.pending_count() == 1
    service.run(waiting.id)
    db.session.expire_all()
    assert db.session.get(ExportJob, waiting.id).status == "done"
