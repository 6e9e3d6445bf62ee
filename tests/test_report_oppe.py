"""OPPE / FPPE packets: the right figures, only the radiologist named, confidential throughout."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime, time, timedelta

import pytest
import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import AuditEvent, ReportExport
from qaportal.qa import stats
from qaportal.reports import qa_data
from qaportal.reports.registry import PEER_REVIEW_STATEMENT
from qaportal.reports.service import ReportError, create_export
from tests.factories import make_review, make_study, make_user
from tests.pdftools import (
    assert_charts_drawn,
    assert_page_furniture,
    page_png,
    pdf_text,
    xmp_text,
)
from tests.report_world import (
    COMMITTEE_NAMES,
    OTHER_READERS,
    REVIEWER_NAMES,
    build_world,
)

STATEMENT_START = "Confidential peer review document"


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _pages(data: bytes) -> list[str]:
    return [p for p in pdf_text(data).split("\f") if p.strip()]


def _form(w: dict, **extra) -> dict:
    return {"radiologist": w["subject"].email, "date_from": w["from"].isoformat(),
            "date_to": w["to"].isoformat(), **extra}


def _web_export(client, kind: str, data: dict):
    resp = client.post(f"/reports/{kind}/export", data=data,
                       headers={"Accept": "application/json"})
    assert resp.status_code == 200, resp.data
    pdf = client.get(resp.get_json()["download_url"])
    assert pdf.status_code == 200
    return resp.get_json()["document_id"], pdf.data


def assert_no_one_else_named(text: str) -> None:
    """No reviewer, committee member, other reader or patient appears."""
    flat = _squash(text)
    for name in (*REVIEWER_NAMES, *COMMITTEE_NAMES, *OTHER_READERS):
        assert name not in flat
        assert name.split()[-1] not in flat  # not even the family name
    assert "SECRET" not in flat and "PATIENT" not in flat


def assert_confidential_numbered(data: bytes) -> list[str]:
    pages = _pages(data)
    assert len(pages) >= 2
    for i, page in enumerate(pages, 1):
        flat = _squash(page)
        assert STATEMENT_START in flat and "privileged and protected" in flat
        assert f"Page {i} of {len(pages)}" in flat
    return pages


def test_oppe_packet_from_the_web_prints_the_stats_figures(app, client, auth):
    w = build_world()
    auth.login(w["qa"])
    doc_id, data = _web_export(client, "oppe", _form(w))
    text = _squash(pdf_text(data))
    assert_confidential_numbered(data)
    assert doc_id in text and "Page 1 of" in text
    record = db.session.scalar(sa.select(ReportExport).where(ReportExport.document_id == doc_id))
    pages = assert_page_furniture(data, record, "OPPE packet")
    for needle in ("Radiologist Olivia Oppenheimer", f"Period {w['from']} to {w['to']}",
                   "Evaluation OPPE — ongoing", STATEMENT_START):
        assert needle in pages[0], needle
    assert_charts_drawn(client, data, "oppe", _form(w), (
        "this radiologist among the department's readers",
        "Monthly significant-discrepancy rate (this radiologist)"))
    html = client.get("/reports/oppe/preview", query_string=_form(w)).get_data(as_text=True)
    assert html.count('class="point highlight') == 1  # the radiologist, ringed

    period = stats.Period(w["from"], w["to"])
    own = stats.summary(db.session, period, reader_id=w["subject"].id)
    dept = stats.department_rate(db.session, period)
    # Hand-checked: 29 scored reviews (one "unable" left out), one confirmed 3b; the 2b
    # downgraded to 2a and the pending 3a do not count. Department: 2 of 69.
    assert (own.rate.k, own.rate.n, own.pending, own.unable) == (1, 29, 1, 1)
    assert (dept.k, dept.n) == (2, 69)
    assert f"1 / 29 {qa_data.rate_pct(own.rate)} {qa_data.rate_ci(own.rate)}" in text
    assert f"2 / 69 {qa_data.rate_pct(dept)} {qa_data.rate_ci(dept)}" in text
    assert qa_data.rate_ci(own.rate) == "0.61–17.18 %"  # Wilson, 1 of 29
    for label, low, high in stats.REFERENCE_RATES:
        assert qa_data.reference_text(low, high) in text and label[:25] in text
    assert "Within the expected range" in text

    assert "Olivia Oppenheimer" in text and "olivia@example.test" in text
    assert_no_one_else_named(text)
    # Credentials and hospital privileges with their validity.
    assert "✗ expired" in text and "⚠ expires" in text and "TX" in text
    today = date.today()
    soon, gone = today + timedelta(days=15), today - timedelta(days=40)
    for needle in ("Diagnostic CT interpretation", "Harbourview Medical", "Proctoring",
                   "Lakeside Clinic", "Image-guided biopsy", f"✓ to {today + timedelta(365)}",
                   f"⚠ expires {soon}", f"✗ expired {gone}"):
        assert needle in text, needle
    assert "4 credentials expired or expiring" in text  # TX, the certification, 2 privileges
    # each privilege's row carries its own mark (the preview is the same HTML)
    html = client.get("/reports/oppe/preview", query_string=_form(w)).get_data(as_text=True)
    rows = {re.sub(r"<[^>]+>", "", r.split("</td>")[0]).strip(): _squash(re.sub(
        r"<[^>]+>", " ", r)) for r in re.findall(r"<tr>(.*?)</tr>", html.split(
            'class="privileges"')[1].split("</table>")[0], re.S)[1:]}
    assert f"✓ to {date.today() + timedelta(365)}" in rows["Diagnostic CT interpretation"]
    assert "Proctoring completed." in rows["Diagnostic CT interpretation"]
    assert f"⚠ expires {soon}" in rows["Neuroradiology MR interpretation"]
    assert f"✗ expired {gone}" in rows["Image-guided biopsy"]
    assert "maintained by the medical staff office" not in text
    # Volume by modality: 24 CT and 10 MR reads (the denominator).
    assert re.search(r"CT 24 24 24 0 0 0 0 0 0 0\.00 %", text)
    assert re.search(r"MR 10 6 0 2 1 1 1 1 1 20\.00 %", text)
    # The confirmed case: category, final score, outcome; no free text.
    assert "Case " in text and "Upheld" in text and "Perceptual (missed finding)" in text
    assert "Agreed." not in text and "Committee view." not in text
    # Second opinions signed: routine 60 min and 60 h (breached), STAT 30 min.
    assert "3 second opinions signed as consultant" in text
    assert re.search(r"All 3 60 min 2\.5 d 2 \(67 %\) 1", text)
    # Only the FPPE has its section.
    assert "Focused professional practice evaluation" not in text
    assert "FPPE conclusion" not in text
    assert "Department chair" in text and "Medical staff office" in text
    xmp = xmp_text(data)
    assert 'pdfaid:part="2"' in xmp and doc_id in xmp
    assert record.kind == "oppe" and record.parameters["radiologist"] == w["subject"].email
    assert record.parameters["date_from"] == w["from"].isoformat()
    assert record.parameters["date_to"] == w["to"].isoformat()
    ev = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "report.exported"))
    assert ev.actor_id == w["qa"].id and ev.details["document_id"] == doc_id
    assert ev.details["parameters"] == record.parameters
    assert ev.details["sha256"] == record.sha256 == hashlib.sha256(data).hexdigest()
    assert record.parameters["confidential"] is True
    assert page_png(data, "oppe-packet").stat().st_size > 5000


def test_fppe_from_the_command_line_adds_its_section(app, tmp_path):
    w = build_world()
    out = tmp_path / "fppe.pdf"
    result = app.test_cli_runner().invoke(args=[
        "report", "fppe", "--radiologist", w["subject"].email, "--from", w["from"].isoformat(),
        "--to", w["to"].isoformat(), "--fppe-trigger", "New privileges: neuro MR",
        "--fppe-criteria", "Review 30 consecutive neuro MR reads; at most 1 confirmed 3b.",
        "--fppe-conclusion", "Criteria met; privileges confirmed.", "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    pages = assert_confidential_numbered(data)
    text = _squash("\n".join(pages))
    assert "FPPE packet" in text and "Focused professional practice evaluation" in text
    assert "New privileges: neuro MR" in text and "at most 1 confirmed 3b" in text
    assert "Criteria met; privileges confirmed." in text
    assert "Department chair's determination" in text and "Monitoring period" in text
    assert_no_one_else_named(text)
    record = db.session.scalar(sa.select(ReportExport))
    assert record.kind == "fppe" and record.created_by_id is None
    assert record.parameters["fppe_trigger"] == "New privileges: neuro MR"
    assert page_png(data, "fppe-packet").stat().st_size > 5000


def test_oppe_command_line_and_unknown_radiologist(app, tmp_path):
    w = build_world()
    out = tmp_path / "oppe.pdf"
    args = ["report", "oppe", "--from", w["from"].isoformat(), "--to", w["to"].isoformat(),
            "-o", str(out)]
    bad = app.test_cli_runner().invoke(args=[*args, "--radiologist", "nobody@example.test"])
    assert bad.exit_code == 2 and "No radiologist" in bad.output and not out.exists()
    ok = app.test_cli_runner().invoke(args=[*args, "--radiologist", w["subject"].email])
    assert ok.exit_code == 0, ok.output
    text = _squash(pdf_text(out.read_bytes()))
    assert "OPPE packet" in text and "Olivia Oppenheimer" in text
    assert PEER_REVIEW_STATEMENT[:60] in text  # on by default, no option to turn it off
    assert_no_one_else_named(text)


@pytest.mark.parametrize("field,value", [
    ("fppe_trigger", "Concern about MRN 12345678"),
    ("fppe_criteria", "Missed finding on DOE^JANE"),
    ("fppe_conclusion", "See accession for details"),
])
def test_fppe_form_refuses_patient_identifiers(app, client, auth, field, value):
    w = build_world()
    auth.login(w["qa"])
    data = _form(w, fppe_trigger="Concern raised by committee", fppe_criteria="20 reads")
    data[field] = value
    resp = client.post("/reports/fppe/export", data=data, headers={"Accept": "application/json"})
    assert resp.status_code == 400
    assert field in resp.get_json()["fields"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ReportExport)) == 0


def test_long_periods_list_at_most_thirty_discrepancies(app):
    qa = make_user(["qa_manager"])
    reader = make_user(["radiologist"], full_name="Vera Volume")
    reviewer = make_user(["reviewer"], full_name="Hidden Reviewer")
    when = stats.Period.last_months(1).start
    at = datetime.combine(when, time(1), UTC)
    for i in range(33):  # imported (legacy) 3a reviews count as confirmed
        read = make_study(reader, finalized_at=at + timedelta(minutes=i)).read
        make_review(read, reviewer, "3a", source="legacy")
    db.session.commit()
    _, pdf = create_export("oppe", {"radiologist": reader.email, "date_from": when,
                                    "date_to": when + timedelta(days=40),
                                    "confidential": True}, qa)
    text = _squash(pdf_text(pdf.data))
    assert len(re.findall(r"Review \d+ \(imported\)", text)) == 30
    assert "3 more confirmed discrepancies" in text
    assert "33 / 33" in text and "Hidden Reviewer" not in text


def test_ad_hoc_confirmed_discrepancies_are_listed_as_such_and_left_out_of_the_rate(app):
    qa = make_user(["qa_manager"])
    reader = make_user(["radiologist"], full_name="Ada Adhoc")
    reviewer = make_user(["reviewer"])
    when = stats.Period.last_months(1).start
    at = datetime.combine(when, time(1), UTC)
    for i, (score, source) in enumerate((("3b", "adhoc"), ("3a", "legacy"), ("1", "legacy"),
                                         ("1", "legacy"))):
        make_review(make_study(reader, finalized_at=at + timedelta(minutes=i)).read,
                    reviewer, score, source=source)
    db.session.commit()
    _, pdf = create_export("oppe", {"radiologist": reader.email, "date_from": when,
                                    "date_to": when + timedelta(days=40),
                                    "confidential": True}, qa)
    text = _squash(pdf_text(pdf.data))
    listed = re.findall(r"Review \d+ \(imported\)( \(ad hoc\))?", text)
    assert sorted(listed) == ["", " (ad hoc)"]
    assert ("1 of these 2 confirmed discrepancies came from ad hoc (not sampled) review, "
            "marked “(ad hoc)”: it is listed here but not in the discrepancy rate") in text
    assert "Ada Adhoc 1/3 33.33 %" in text and "1 ad hoc review counted apart" in text


@pytest.mark.parametrize("roles", [("radiologist",), ("reviewer",)])
def test_only_qa_staff_may_make_packets(app, client, login_as, roles):
    user = login_as(*roles)
    subject = make_user(["radiologist"])
    db.session.commit()
    today = stats.Period.last_months(1)
    data = {"radiologist": subject.email, "date_from": today.start.isoformat(),
            "date_to": today.end.isoformat(), "fppe_trigger": "x", "fppe_criteria": "y"}
    for kind in ("oppe", "fppe"):
        assert client.post(f"/reports/{kind}/export", data=data).status_code == 403
        assert client.get(f"/reports/{kind}/preview", query_string=data).status_code == 403
        with pytest.raises(ReportError):
            create_export(kind, {**data, "date_from": today.start, "date_to": today.end,
                                 "confidential": True}, user)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ReportExport)) == 0
