"""`qaportal report ...`: command-line exports are recorded, audited and verifiable."""

from __future__ import annotations

import hashlib
import re
from datetime import date, timedelta

import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import AuditEvent, ReportExport
from qaportal.reports.service import verify_file
from tests.factories import make_user
from tests.pdftools import pdf_text


def test_report_audit_writes_a_recorded_pdf(app, tmp_path):
    make_user(roles=("qa_manager",))
    db.session.commit()
    out = tmp_path / "audit.pdf"
    result = app.test_cli_runner().invoke(args=[
        "report", "audit", "--from", (date.today() - timedelta(days=2)).isoformat(),
        "--to", date.today().isoformat(), "--action", "report.", "--confidential", "-o", str(out)])
    assert result.exit_code == 0, result.output
    doc_id = re.search(r"QAP-[A-Z2-7]{16}", result.output).group(0)
    data = out.read_bytes()
    record = db.session.scalar(sa.select(ReportExport))
    assert record.document_id == doc_id and record.created_by_id is None
    assert record.created_by_label.startswith("command line (")
    assert record.sha256 == hashlib.sha256(data).hexdigest()
    assert record.parameters["action"] == "report."
    assert verify_file(data).genuine
    text = pdf_text(data)
    assert doc_id in text and "privileged and protected" in text
    event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "report.exported"))
    assert event.actor_id is None and event.actor_label == record.created_by_label


def test_report_credentials_defaults_to_today(app, tmp_path):
    make_user(full_name="Carla Credentialed", licenses=["CA"])
    db.session.commit()
    out = tmp_path / "roster.pdf"
    result = app.test_cli_runner().invoke(args=["report", "credentials", "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = pdf_text(out.read_bytes())
    assert "Carla Credentialed" in text and f"Status as of {date.today():%d %B %Y}" in text
    # the roster is confidential by default; --no-confidential turns it off
    assert "privileged and protected" in text


def test_bad_dates_are_refused_without_an_export(app, tmp_path):
    out = tmp_path / "x.pdf"
    result = app.test_cli_runner().invoke(args=[
        "report", "audit", "--from", "2024-13-01", "--to", "2024-01-01", "-o", str(out)])
    assert result.exit_code == 2
    assert "date_from" in result.output
    assert not out.exists()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ReportExport)) == 0
