"""A QA manager previews a report and downloads its PDF in a real browser."""

from __future__ import annotations

import re
from datetime import date, timedelta

from playwright.sync_api import expect

from qaportal.extensions import db
from tests.e2e.browser import sign_in
from tests.factories import make_user
from tests.pdftools import ARTIFACTS, pdf_text


def test_preview_then_download_the_pdf(live_server, live_app, page):
    with live_app.app_context():
        email = make_user(roles=("qa_manager",), full_name="Quinn Quality").email
        db.session.commit()
    sign_in(page, live_server.url, email)
    page.get_by_role("link", name="Reports", exact=True).click()
    page.get_by_role("link", name="Audit trail").click()
    page.fill("#date_from", (date.today() - timedelta(days=1)).isoformat())
    page.fill("#date_to", date.today().isoformat())
    page.check("#confidential")

    with page.context.expect_page() as opened:
        page.click("#preview-btn")
    preview = opened.value
    preview.wait_for_load_state()
    expect(preview.locator(".preview-banner")).to_be_visible()
    expect(preview.locator(".verdict")).to_contain_text("hash chain intact")
    assert "csrf_token" not in preview.url
    preview.close()

    page.click("#export-btn")
    expect(page.locator("#export-status .spinner")).to_be_visible()
    link = page.locator("#download-link")
    expect(link).to_be_visible(timeout=30_000)
    expect(page.locator("#export-status")).to_contain_text(re.compile(r"Ready: QAP-"))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "reports-page.png"), full_page=True)
    with page.expect_download() as download_info:
        link.click()
    download = download_info.value
    assert re.fullmatch(r"QAP-[A-Z2-7]{16}\.pdf", download.suggested_filename)
    with open(download.path(), "rb") as fh:
        data = fh.read()
    text = pdf_text(data)
    assert download.suggested_filename[:-4] in text
    assert "privileged and protected" in text

    page.reload()
    expect(page.locator("#past-exports")).to_contain_text(download.suggested_filename[:-4])


def _create_and_download(page) -> bytes:
    page.click("#export-btn")
    link = page.locator("#download-link")
    expect(link).to_be_visible(timeout=60_000)
    with page.expect_download() as download_info:
        link.click()
    with open(download_info.value.path(), "rb") as fh:
        return fh.read()


def test_qa_manager_downloads_the_peer_review_reports(live_server, live_app, page):
    from tests.report_world import OTHER_READERS, REVIEWER_NAMES, build_world

    with live_app.app_context():
        w = build_world()
        email, subject = w["qa"].email, w["subject"].email
        start, end = w["from"].isoformat(), w["to"].isoformat()
    sign_in(page, live_server.url, email)
    page.get_by_role("link", name="Reports", exact=True).click()

    page.get_by_role("link", name="OPPE packet").click()
    page.select_option("#radiologist", subject)
    page.fill("#date_from", start)
    page.fill("#date_to", end)
    text = pdf_text(_create_and_download(page))
    assert "OPPE packet" in text and "Olivia Oppenheimer" in text
    assert not any(n in text for n in (*REVIEWER_NAMES, *OTHER_READERS))

    page.get_by_role("link", name="FPPE packet").click()
    page.select_option("#radiologist", subject)
    page.fill("#date_from", start)
    page.fill("#date_to", end)
    page.fill("#fppe_trigger", "New privileges: neuro MR")
    page.fill("#fppe_criteria", "Thirty consecutive neuro MR reads.")
    text = pdf_text(_create_and_download(page))
    assert "Focused professional practice evaluation" in text
    assert "New privileges: neuro MR" in text

    page.get_by_role("link", name="Department QA summary").click()
    page.fill("#date_from", start)
    page.fill("#date_to", end)
    text = pdf_text(_create_and_download(page))
    assert "Department QA summary" in text and "R01" in text
    assert "Olivia Oppenheimer" not in text
    page.check("#show_names")
    text = pdf_text(_create_and_download(page))
    assert "Olivia Oppenheimer" in text


def test_requester_downloads_the_case_packet(live_server, live_app, page, tmp_path):
    """The requester opens a signed coverage review and downloads its case packet."""
    from tests.test_report_case_packet import IMPRESSION, make_case

    with live_app.app_context():
        requester, consultant, req = make_case(tmp_path)
        email, request_id, consultant_name = requester.email, req.id, consultant.full_name
        db.session.remove()
    sign_in(page, live_server.url, email)
    page.goto(f"{live_server.url}/opinions/{request_id}")
    page.get_by_role("link", name="Case packet (PDF)").click()
    expect(page.locator("#request")).to_have_value(str(request_id))
    text = pdf_text(_create_and_download(page))
    assert "Second-opinion case packet" in text
    assert consultant_name in text and " ".join(IMPRESSION.split()[:4]) in " ".join(text.split())
