"""Department QA summary: coded readers (names only when asked), the stats figures, SLAs."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import AuditEvent, ReportExport, utcnow
from qaportal.qa import cases as case_service
from qaportal.qa import stats
from qaportal.reports import department, qa_data
from qaportal.reports.department import build_department
from tests.factories import make_review, make_study, make_user
from tests.pdftools import (
    assert_charts_drawn,
    assert_page_furniture,
    page_png,
    pdf_text,
    xmp_text,
)
from tests.report_world import COMMITTEE_NAMES, OTHER_READERS, REVIEWER_NAMES, build_world


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _lines(data: bytes) -> list[str]:
    return [_squash(line).strip() for line in pdf_text(data).splitlines()]


def _period(w) -> stats.Period:
    return stats.Period(w["from"], w["to"])


def test_department_summary_codes_readers_and_prints_the_stats(app, client, auth):
    w = build_world()
    auth.login(w["qa"])
    resp = client.post("/reports/department/export", headers={"Accept": "application/json"},
                       data={"date_from": w["from"].isoformat(), "date_to": w["to"].isoformat()})
    assert resp.status_code == 200, resp.data
    data = client.get(resp.get_json()["download_url"]).data
    pages = [p for p in pdf_text(data).split("\f") if p.strip()]
    for i, page in enumerate(pages, 1):
        assert "privileged and protected" in _squash(page)
        assert f"Page {i} of {len(pages)}" in _squash(page)
    text = _squash(pdf_text(data))
    for name in (w["subject"].full_name, *OTHER_READERS, *REVIEWER_NAMES, *COMMITTEE_NAMES):
        assert name not in text
    assert "SECRET" not in text

    period = _period(w)
    readers = {r.reader_id: r for r in stats.reader_stats(db.session, period)}
    dept = stats.department_rate(db.session, period)
    assert (dept.k, dept.n) == (2, 69)
    assert f"2 / 69 {qa_data.rate_pct(dept)} {qa_data.rate_ci(dept)}" in text
    # Codes follow account ids: the subject, then the two other readers.
    lines = _lines(data)
    ids = [w["subject"].id, *(o.id for o in w["others"])]
    for code, rid in zip(("R01", "R02", "R03"), ids, strict=True):
        s = readers[rid]
        row = next(line for line in lines if line.startswith(code + " "))
        assert f"{qa_data.rate_pct(s.rate)} {qa_data.rate_ci(s.rate)}" in row, row
    assert next(x for x in lines if x.startswith("R01 ")).startswith("R01 34 29 24 2 1 1 1 1 1")
    assert "R04" not in text
    # Reviewers are coded too; completion from stats.reviewer_stats.
    assert re.search(r"\bV01 \d+ \d+ \d+ %", text)
    # Cases by status and age (stats.open_cases_by_age), outcomes.
    assert "Awaiting committee 1" in text and "Feedback with reader 3" in text
    assert "0–7 days 4" in text and "Upheld 2" in text and "Downgraded 1" in text
    # Second opinions requested in the period: 3 signed, 1 urgent still open and overdue.
    assert re.search(r"urgent 4 ?h 1 0 — — 0 0 1", text)
    assert re.search(r"All 4 3 60 min 2\.5 d 2 \(67 %\) 1 1", text)
    for label, low, high in stats.REFERENCE_RATES:
        assert qa_data.reference_text(low, high) in text and label[:25] in text
    assert 'pdfaid:part="2"' in xmp_text(data)
    assert "QA committee chair" in text
    record = db.session.scalar(sa.select(ReportExport))
    assert record.kind == "department" and record.parameters["show_names"] is False
    cover = assert_page_furniture(data, record, "Department QA summary")[0]
    assert f"Period {w['from']} to {w['to']}" in cover and "Readers coded (R01, R02…)" in cover
    params = {"date_from": w["from"].isoformat(), "date_to": w["to"].isoformat()}
    assert_charts_drawn(client, data, "department", params, (
        "Significant-discrepancy rate by review count", "Monthly significant-discrepancy rate"))
    ev = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "report.exported"))
    assert ev.actor_id == w["qa"].id and ev.details["parameters"] == record.parameters
    assert record.parameters == {"date_from": w["from"].isoformat(),
                                 "date_to": w["to"].isoformat(), "show_names": False,
                                 "confidential": True}
    assert page_png(data, "department-summary").stat().st_size > 5000


def test_show_names_from_the_command_line(app, tmp_path):
    w = build_world()
    out = tmp_path / "dept.pdf"
    result = app.test_cli_runner().invoke(args=[
        "report", "department", "--from", w["from"].isoformat(), "--to", w["to"].isoformat(),
        "--show-names", "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = _squash(pdf_text(out.read_bytes()))
    for name in (w["subject"].full_name, *OTHER_READERS, *REVIEWER_NAMES):
        assert name in text
    assert not re.search(r"\bR0\d\b", text)
    assert "privileged and protected" in text  # always, for peer-review documents
    assert db.session.scalar(sa.select(ReportExport)).parameters["show_names"] is True


def test_funnel_labels_only_outliers(app):

    reviewer = make_user(["reviewer"])
    normal = [make_user(["radiologist"]) for _ in range(3)]
    outlier = make_user(["radiologist"])
    for reader in normal:
        for _ in range(40):
            make_review(make_study(reader).read, reviewer, "1")
    for i in range(40):
        make_review(make_study(outlier).read, reviewer, "3b" if i < 12 else "1",
                    source="legacy")
    db.session.commit()
    period = stats.Period.last_months(1)
    ctx = build_department({"date_from": period.start, "date_to": period.end,
                            "show_names": False}, None)
    codes = {r["code"]: r for r in ctx["rows"]}
    assert codes["R04"]["position"] == "high99" and ctx["outlier_count"] == 1
    svg = str(ctx["funnel"])
    assert ">R04</text>" in svg and ">R01</text>" not in svg


@pytest.mark.parametrize("roles", [("radiologist",), ("reviewer",)])
def test_only_qa_staff_may_make_the_summary(app, client, login_as, roles):
    login_as(*roles)
    period = stats.Period.last_months(1)
    data = {"date_from": period.start.isoformat(), "date_to": period.end.isoformat()}
    assert client.post("/reports/department/export", data=data).status_code == 403
    assert client.get("/reports/department/preview", query_string=data).status_code == 403
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ReportExport)) == 0


def test_admin_previews_the_summary(app, client, login_as):
    login_as("admin")
    period = stats.Period.last_months(1)
    resp = client.get("/reports/department/preview", query_string={
        "date_from": period.start.isoformat(), "date_to": period.end.isoformat()})
    assert resp.status_code == 200
    assert "Department QA summary" in resp.get_data(as_text=True)


def test_open_cases_are_counted_not_read(app, tmp_path, monkeypatch):
    """The summary reads aggregates and the OLDEST_OPEN_CASES oldest open cases: the same
    statements at 2 open cases and at 12, no statement returning every open case, and the
    PDF still states the true totals and each age bucket's oldest case."""
    from tests.test_query_counts import counting

    monkeypatch.setattr(department, "OLDEST_OPEN_CASES", 3)
    reviewer, reader, qa = make_user(["reviewer"]), make_user(["radiologist"]), make_user(
        ["qa_manager"])
    now = utcnow()

    def add_open(ages: list[int]) -> None:
        for days in ages:
            case = case_service.open_case(
                make_review(make_study(reader).read, reviewer, "3b"), by=reviewer)
            case.opened_at = now - timedelta(days=days, hours=1)
        db.session.commit()

    period = stats.Period.last_months(1)
    params = {"date_from": period.start, "date_to": period.end, "show_names": False}
    add_open([1, 40])
    with counting() as small:
        ctx = build_department(params, qa)
    assert ctx["open_cases"] == 2 and [c.age_days for c in ctx["oldest_open"]] == [40, 1]
    add_open([0, 3, 8, 20, 31, 60, 95, 120, 200, 6])
    with counting() as large:
        ctx = build_department(params, qa)
    assert len(large) == len(small), set(large) - set(small)
    for statement in large:  # every read of the cases table aggregates or stops early
        if "FROM discrepancy_cases" in statement and "!=" in statement:
            assert "count(" in statement or "LIMIT" in statement, statement
    ages = [1, 40, 0, 3, 8, 20, 31, 60, 95, 120, 200, 6]
    expected = []
    for _limit, label in stats.AGE_BUCKETS:
        mine = [a for a in ages if stats.age_bucket(a) == label]
        expected.append((label, len(mine), max(mine) if mine else None))
    assert [(b.label, b.count, b.oldest_days) for b in ctx["by_age"]] == expected
    assert ctx["open_cases"] == 12
    assert [c.age_days for c in ctx["oldest_open"]] == [200, 120, 95]

    out = tmp_path / "dept.pdf"
    result = app.test_cli_runner().invoke(args=[
        "report", "department", "--from", period.start.isoformat(), "--to",
        period.end.isoformat(), "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = _squash(pdf_text(out.read_bytes()))
    assert "Oldest cases not yet closed: 3 of 12" in text
    assert "The 3 oldest are listed; all 12 are counted in the table above." in text
    for label, count, oldest in expected:
        assert f"{label} {count} {f'{oldest} days' if oldest is not None else '—'}" in text
    assert re.search(r"Case \d+ Awaiting committee \d\d \w{3} \d{4} 200 days", text), text
