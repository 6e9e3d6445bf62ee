"""An administrator reads the audit log and verifies the chain in a real browser."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from qaportal import audit
from qaportal.extensions import db
from tests.e2e.browser import sign_in
from tests.factories import make_study, make_user
from tests.pdftools import ARTIFACTS


def _seed(app) -> str:
    with app.app_context():
        admin = make_user(roles=("admin",), full_name="Ada Admin")
        rad = make_user(roles=("radiologist",),
                        email="reader.with.a.long.address@hospital.example.org")
        study = make_study(rad)
        audit.record("user.updated", rad, actor=admin, changes={"roles": [["radiologist"],
                                                                          ["radiologist",
                                                                           "reviewer"]]})
        audit.record("study.viewed", study, actor=rad, mode="full", page="viewer")
        audit.record("report.exported", ("report_exports", 3), actor=admin, kind="audit",
                     document_id="QAP-" + "7F3A9C" * 12, sha256="ab" * 32)
        db.session.commit()
        return admin.email


def test_audit_log_page_reads_well_and_verifies_the_chain(live_server, live_app, page):
    email = _seed(live_app)
    sign_in(page, live_server.url, email)
    page.get_by_role("link", name="Audit log", exact=True).first.click()
    expect(page.locator("h1")).to_have_text("Audit log")

    # Each time stays on one line; long details wrap inside the page's container.
    for cell in page.locator("td.audit-time").all():
        box = cell.locator("time").bounding_box()
        line = float(cell.evaluate("c => parseFloat(getComputedStyle(c).lineHeight) || 20"))
        assert box["height"] < 1.6 * line, box
    container = page.locator("main").bounding_box()
    table = page.locator("table.audit-table").bounding_box()
    assert table["x"] + table["width"] <= container["x"] + container["width"] + 1
    # Objects read as labels, linked where the administrator may open them.
    account = "Account reader.with.a.long.address@hospital.example.org"
    expect(page.get_by_role("link", name=account)).to_be_visible()
    expect(page.locator("td.audit-object", has_text="Report export #3")).to_be_visible()
    study_link = page.locator("td.audit-object a", has_text="Study #")
    expect(study_link).to_be_visible()

    page.get_by_role("button", name="Verify new entries").click()
    expect(page.locator(".flash-success")).to_contain_text("audit log intact")
    expect(page.locator("td code", has_text="audit.verified")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "audit-log.png"), full_page=True)

    study_link.first.click()
    expect(page).to_have_url(re.compile(r"/studies/\d+$"))
