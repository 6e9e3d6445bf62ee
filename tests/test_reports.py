"""Reports: exports are recorded, audited and verifiable; the pages obey permissions."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from qaportal import audit
from qaportal.extensions import db
from qaportal.models import AuditEvent, ReportExport
from qaportal.reports.registry import PEER_REVIEW_STATEMENT, REPORTS
from tests.factories import make_certification, make_export, make_user
from tests.pdftools import info, page_png, page_texts, pdf_text


def _period() -> dict:
    """Yesterday and today, read when a test runs (a run may cross midnight)."""
    today = date.today()
    return {"date_from": (today - timedelta(days=1)).isoformat(), "date_to": today.isoformat()}


def _export(client, kind, data):
    return client.post(f"/reports/{kind}/export", data=data,
                       headers={"Accept": "application/json"})


def _events(action):
    return db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)).all()


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_audit_export_is_recorded_audited_stored_and_printed(app, client, login_as):
    qa = login_as("qa_manager")
    resp = _export(client, "audit", {**_period(), "confidential": "y"})
    assert resp.status_code == 200, resp.data
    body = resp.get_json()
    doc_id = body["document_id"]
    assert re.fullmatch(r"QAP-[A-Z2-7]{16}", doc_id)

    record = db.session.scalar(sa.select(ReportExport))
    assert (record.document_id, record.kind, record.created_by_id) == (doc_id, "audit", qa.id)
    assert record.parameters["date_from"] == _period()["date_from"]
    stored = Path(app.config["EXPORT_ROOT"]) / record.storage_key
    data = stored.read_bytes()
    assert len(data) == record.size_bytes and record.page_count == body["pages"]
    [event] = _events("report.exported")
    assert event.details["document_id"] == doc_id and event.details["sha256"] == record.sha256
    assert audit.verify().ok

    pages = page_texts(data)
    assert len(pages) == record.page_count >= 2
    for number, text in enumerate(pages, start=1):
        flat = _squash(text)
        assert f"Page {number} of {len(pages)}" in flat
        assert doc_id in flat
        assert PEER_REVIEW_STATEMENT[:60] in flat
    text = _squash(pdf_text(data))
    assert "Audit log hash chain intact" in text
    assert "auth.login" in text  # the QA manager's own sign-in is in the period
    assert doc_id in info(data)["/Keywords"]
    assert info(data)["/qaportaldocumentid"] == doc_id


def test_confidentiality_statement_only_when_asked(client, login_as):
    login_as("admin")
    resp = _export(client, "audit", _period())
    record = db.session.scalar(sa.select(ReportExport))
    resp = client.get(f"/reports/exports/{record.document_id}.pdf")
    assert resp.status_code == 200
    assert "peer review document" not in _squash(pdf_text(resp.data))


def test_credentials_roster_marks_expired_and_expiring(app, client, login_as):
    soon = date.today() + timedelta(days=10)
    alice = make_user(full_name="Alice Adams", subspecialties=["neuro"], licenses=[
        ("NY", date.today() - timedelta(days=700), date.today() - timedelta(days=3)),
        ("TX", date.today() - timedelta(days=100), soon)])
    make_certification(alice, expires_on=date.today() + timedelta(days=900))
    make_user(full_name="Bob Brown", licenses=["CA"])
    make_user(roles=("reviewer",), full_name="Rita Reviewer-Only")
    make_user(full_name="Dee Activated", licenses=["CA"], active=False)
    login_as("qa_manager")
    resp = _export(client, "credentials", {"as_of": date.today().isoformat(), "confidential": "y"})
    assert resp.status_code == 200, resp.data
    data = client.get(resp.get_json()["download_url"]).data
    text = _squash(pdf_text(data))
    assert "Alice Adams" in text and "Bob Brown" in text
    assert "Rita Reviewer-Only" not in text and "Dee Activated" not in text
    assert f"expired {date.today() - timedelta(days=3)}" in text
    assert f"expires {soon}" in text
    assert "Neuroradiology" in text
    assert "Credentialing committee chair" in text  # the sign-off block
    assert page_png(data, "report-credentials").stat().st_size > 5000


def test_page_one_of_each_report_is_rendered_for_people(app):
    """Writes test-artifacts/report-<kind>.png: look at them when changing the design."""
    qa = make_user(roles=("qa_manager",))
    make_user(full_name="Alice Adams", licenses=["CA"])
    for i in range(30):
        audit.record("study.viewed", ("studies", i), actor=qa, mode="full")
    db.session.commit()
    # The case packet needs a request with stored images: tests/test_report_case_packet.py
    # writes its page 1 (test-artifacts/case-packet-page1.png).
    for kind in (k for k in REPORTS if k != "case"):
        _, data = make_export(qa, kind, confidential=True)
        png = page_png(data, f"report-{kind}")
        assert png.stat().st_size > 5000


def test_preview_is_the_print_html_and_is_audited(client, login_as):
    login_as("qa_manager")
    resp = client.get("/reports/audit/preview", query_string={**_period(), "csrf_token": "x"})
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "Preview — not an export" in html and 'href="/static/css/print.css"' in html
    assert "Audit log hash chain intact" in html
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ReportExport)) == 0
    [event] = _events("report.previewed")
    assert event.details["kind"] == "audit" and "csrf_token" not in event.details["parameters"]


@pytest.mark.parametrize("path", ["/reports/audit/preview", "/reports/credentials/preview"])
def test_bad_parameters_keep_the_input_and_explain(client, login_as, path):
    login_as("qa_manager")
    resp = client.get(path, query_string={"date_from": "2024-05-09", "date_to": "2024-05-01",
                                          "as_of": "not-a-date"})
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert "must not be before" in page or "as YYYY-MM-DD" in page
    assert 'value="2024-05-09"' in page or 'value="not-a-date"' in page
    assert page.count('name="csrf_token"') >= 2  # the form can still be sent


def test_export_with_bad_parameters_answers_json_errors(client, login_as):
    login_as("qa_manager")
    resp = _export(client, "audit", {"date_from": "2024-05-09", "date_to": "2024-05-01"})
    assert resp.status_code == 400
    assert "date_to" in resp.get_json()["fields"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ReportExport)) == 0


@pytest.mark.parametrize(("roles", "status", "index"), [
    # Radiologists reach the page for their own requests' case packets only.
    (("radiologist",), 403, 200), (("reviewer",), 403, 403), (("qa_manager",), 200, 200),
    (("admin",), 200, 200),
])
def test_reports_pages_by_role(client, login_as, roles, status, index):
    login_as(*roles)
    assert client.get("/reports/").status_code == index
    assert client.get("/reports/credentials/preview").status_code in (status, 400)
    assert _export(client, "credentials", {"as_of": date.today().isoformat()}).status_code in (
        status, 400)
    assert client.get("/reports/verify").status_code == 200


def test_unknown_kind_is_404(client, login_as):
    login_as("qa_manager")
    assert client.get("/reports/nope/preview").status_code == 404
    assert _export(client, "nope", {}).status_code == 404


def test_download_only_for_its_maker_and_qa(client, auth, login_as):
    maker = make_user(roles=("qa_manager",))
    export, data = make_export(maker)
    db.session.commit()
    url = f"/reports/exports/{export.document_id}.pdf"
    login_as("radiologist")
    assert client.get(url).status_code == 404
    auth.logout()
    login_as("admin")
    resp = client.get(url)
    assert resp.status_code == 200 and resp.data == data
    assert resp.headers["Content-Disposition"] == f'attachment; filename="{export.document_id}.pdf"'
    assert _events("report.downloaded")[0].details["document_id"] == export.document_id
    assert client.get("/reports/exports/QAP-AAAAAAAAAAAAAAAA.pdf").status_code == 404


def test_damaged_stored_export_is_not_served(app, client, login_as):
    qa = login_as("qa_manager")
    export, data = make_export(qa)
    db.session.commit()
    path = Path(app.config["EXPORT_ROOT"]) / export.storage_key
    path.write_bytes(data[:-1] + b"X")
    assert client.get(f"/reports/exports/{export.document_id}.pdf").status_code == 410
    assert _events("report.file_damaged")


def _verify_upload(client, data: bytes):
    return client.post("/reports/verify", data={"file": (io.BytesIO(data), "report.pdf")},
                       content_type="multipart/form-data")


def test_verify_accepts_an_export_and_rejects_a_one_byte_change(client, login_as):
    maker = make_user(roles=("qa_manager",), full_name="Quinn Quality")
    export, data = make_export(maker)
    db.session.commit()
    login_as("radiologist")  # any signed-in user may verify
    page = _verify_upload(client, data).get_data(as_text=True)
    assert "Unaltered export of this portal" in page
    assert export.document_id in page and "Quinn Quality" in page

    middle = len(data) // 2
    altered = data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1:]
    resp = _verify_upload(client, altered)
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "Not an unaltered export of this portal" in page
    assert "Unaltered export of this portal" not in page
    assert f"names document <code>{export.document_id}</code>" in page

    results = [e.details["genuine"] for e in _events("report.verified")]
    assert results == [True, False]


def test_verify_by_document_id(client, login_as):
    export, _ = make_export(make_user(roles=("admin",)))
    db.session.commit()
    login_as("reviewer")
    page = client.post("/reports/verify", data={"document_id": export.document_id.lower()})
    assert "Export on record" in page.get_data(as_text=True)
    page = client.post("/reports/verify", data={"document_id": "QAP-AAAAAAAAAAAAAAAA"})
    assert "No export with this document id" in page.get_data(as_text=True)
    resp = client.post("/reports/verify", data={})
    assert resp.status_code == 400
    assert "Choose a PDF file or enter a document id" in resp.get_data(as_text=True)


def test_reports_nav_entry_for_qa(client, login_as):
    login_as("qa_manager")
    assert 'href="/reports/"' in client.get("/").get_data(as_text=True)


def test_document_ids_are_unique_in_the_database(app):
    qa = make_user(roles=("qa_manager",))
    export, _ = make_export(qa)
    db.session.commit()
    clone = ReportExport(document_id=export.document_id, kind="audit", title="x", parameters={},
                         created_by_label="x", sha256="0" * 64, size_bytes=1, page_count=1,
                         storage_key="2000/01/QAP-BBBBBBBBBBBBBBBB.pdf")
    db.session.add(clone)
    with pytest.raises(sa.exc.IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_long_table_repeats_its_header_on_every_page(client, login_as):
    qa = login_as("qa_manager")
    for i in range(160):
        audit.record("bulk.event", qa, actor=qa, n=i)
    db.session.commit()
    resp = _export(client, "audit", _period())
    assert resp.status_code == 200, resp.data
    data = client.get(resp.get_json()["download_url"]).data
    header = re.compile(r"#\s+TIME \(UTC\)\s+ACTOR\s+ACTION\s+OBJECT\s+FROM\s+DETAILS\s+HASH",
                        re.I)
    pages = [p for p in pdf_text(data).split("\f") if p.strip()]
    with_rows = [i for i, p in enumerate(pages) if "bulk.event" in p]
    assert len(with_rows) >= 3, len(with_rows)  # the entries run over several pages
    for i in with_rows[1:]:  # continuation pages carry the table's header again
        rows_at = pages[i].find("bulk.event")
        match = header.search(pages[i])
        assert match and match.start() < rows_at, f"page {i + 1}"


def test_verify_page_says_when_and_by_whom_the_document_was_made(client, login_as):
    maker = make_user(roles=("qa_manager",), full_name="Quinn Quality")
    export, data = make_export(maker)
    db.session.commit()
    login_as("reviewer")
    made = f"{export.created_at:%Y-%m-%d %H:%M:%S} UTC"
    for page in (_verify_upload(client, data).get_data(as_text=True),
                 client.post("/reports/verify", data={"document_id": export.document_id}
                             ).get_data(as_text=True)):
        result = page.split('id="verify-result"')[1]
        assert re.search(r"<dt>Made</dt><dd><time datetime=\"[^\"]+\" data-local>"
                         + re.escape(made) + "</time></dd>", result)
        assert f"<dt>Made by</dt><dd>Quinn Quality &lt;{maker.email}&gt;</dd>" in result
        assert f"<dt>Pages</dt><dd>{export.page_count}</dd>" in result
    altered = data[:-20] + bytes([data[-20] ^ 1]) + data[-19:]
    page = _verify_upload(client, altered).get_data(as_text=True)
    assert re.search(r"which this portal made\s+on <time[^>]*>"  # when the original was made
                     + re.escape(f"{export.created_at:%Y-%m-%d %H:%M} UTC"), page)


def test_audit_trail_report_selects_the_audit_pages_entries(app):
    # One filter for both: the report reads the audit log page's query (the actor text
    # resolved to the labels it matches, in any case), so they cannot drift apart.
    from qaportal.auditlog.query import filtered
    from qaportal.reports.audit_trail import build_context

    qa = make_user(roles=("qa_manager",), email="quinn.quality@example.test")
    other = make_user(roles=("radiologist",), email="otto.other@example.test")
    for i in range(3):
        audit.record("study.viewed", ("studies", i), actor=qa, mode="full")
    audit.record("study.viewed", ("studies", 9), actor=other, mode="full")
    db.session.commit()
    params = {**_period(), "actor": " QUINN ", "action": "study."}
    context = build_context({**params, "date_from": date.fromisoformat(params["date_from"]),
                             "date_to": date.fromisoformat(params["date_to"])}, qa)
    page = db.session.scalars(filtered(params).order_by(AuditEvent.seq)).all()
    assert [e.seq for e in context["events"]] == [e.seq for e in page]
    assert context["total"] == 3 and {e.actor_id for e in page} == {qa.id}
    assert context["by_actor"] == [("quinn.quality@example.test", 3)]


def test_reports_check_the_chain_from_the_last_verified_checkpoint(client, login_as):
    # A full pass over millions of entries takes minutes, longer than a request may: the
    # PDFs verify from the checkpoint an intact `audit-verify` wrote, and say so.
    from qaportal.audit_verify import anchor_head

    qa = login_as("qa_manager")
    for i in range(5):
        audit.record("study.viewed", ("studies", i), actor=qa, mode="full")
    db.session.commit()
    full = audit.verify()
    assert full.ok and not full.since
    anchor_head(full)
    for i in range(3):
        audit.record("bulk.event", qa, actor=qa, n=i)
    db.session.commit()
    resp = client.get("/reports/audit/preview", query_string=_period())
    assert resp.status_code == 200
    text = _squash(re.sub(r"<[^>]+>", " ", resp.get_data(as_text=True)))
    found = re.search(r"intact: (\d+) entries: the (\d+) written since the verified checkpoint "
                      r"of \S+ re-hashed now, entries 1 to (\d+) by the pass", text)
    assert found, text
    total, since_then, before = map(int, found.groups())
    assert before == full.count and since_then >= 3 and total == before + since_then
    assert "Audit log hash chain intact" in text
