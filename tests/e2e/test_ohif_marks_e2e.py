"""Browser: a consultant draws a length in OHIF (the mouse on the viewport), saves it through
OHIF's own measurement panel (an SR by STOW-RS), signs the opinion in the portal; the
requester (who uploaded the study) finds the measurement, its length in mm and its key image
with the mark drawn on the opinion page and in the case packet PDF. A blind reviewer does
the same in a review, and no response to their browser carries an identifying value."""

from __future__ import annotations

import io
import re
import subprocess

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import Error as PlaywrightError

from qaportal.dicom.marks_draw import MARK_COLOUR as AMBER
from qaportal.extensions import db
from tests.e2e.browser import sign_in
from tests.e2e.ohif_marks import csp_violations, draw_length, save_report
from tests.e2e.ohif_world import RECORD_CSP, fetched_build, sentinel_study, webgl_browser
from tests.factories import DEFAULT_PASSWORD, make_certification, make_user
from tests.pdftools import pdf_text

pytestmark = pytest.mark.slow



def row_text(mm: float) -> str:
    """A length as the portal prints it (qaportal.marks.display: 4 significant digits)."""
    return f"{mm:.4g}"


@pytest.fixture
def webgl(playwright) -> Browser:
    fetched_build()
    browser = webgl_browser(playwright)
    yield browser
    browser.close()


def _page(browser: Browser) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(RECORD_CSP)
    return context.new_page()


def _amber_pixels(png: bytes) -> int:
    raw = Image.open(io.BytesIO(png)).convert("RGB").tobytes()
    return sum(1 for i in range(0, len(raw), 3)
               if abs(raw[i] - AMBER[0]) < 30 and abs(raw[i + 1] - AMBER[1]) < 40
               and raw[i + 2] < 60)


def _key_image_on_page(page: Page) -> bytes:
    """The key image the page shows: loaded in the browser, fetched with its session."""
    img = page.locator("#viewer-marks .key-images img").first
    expect(img).to_be_visible()
    img.scroll_into_view_if_needed()
    page.wait_for_function("(el) => el.complete && el.naturalWidth > 0", arg=img.element_handle())
    src = img.get_attribute("src")
    assert re.fullmatch(r"/marks/\d+/key-images/0\.png", src), src
    r = page.request.get(page.url.split("/", 3)[0] + "//" + page.url.split("/", 3)[2] + src)
    assert r.status == 200 and r.headers["content-type"] == "image/png"
    return r.body()


def _pdf_images(data: bytes, folder) -> list[bytes]:
    """The images embedded in the PDF, as PNG (poppler's pdfimages)."""
    folder.mkdir()
    pdf = folder / "packet.pdf"
    pdf.write_bytes(data)
    subprocess.run(["pdfimages", "-png", str(pdf), str(folder / "im")], check=True)
    return [p.read_bytes() for p in sorted(folder.glob("im-*.png"))]


def _download_packet(page: Page, base: str, request_id: int) -> bytes:
    page.goto(f"{base}/opinions/{request_id}")
    page.locator("#case-packet").click()
    expect(page.locator("#request")).to_have_value(str(request_id))
    page.click("#export-btn")
    link = page.locator("#download-link")
    expect(link).to_be_visible(timeout=60_000)
    with page.expect_download() as download_info:
        link.click()
    with open(download_info.value.path(), "rb") as fh:
        return fh.read()


def test_consultant_length_in_ohif_reaches_the_opinion_and_the_case_packet(
        live_server, webgl: Browser, tmp_path):
    from qaportal.opinions import service as opinions

    with live_server.app.app_context():
        owner = make_user(roles=("radiologist",), licenses=["CA"],
                          email="ohif-uploader@e2e.test")
        consultant = make_user(roles=("radiologist",), licenses=["CA"],
                               subspecialties=["neuro"], email="ohif-consultant@e2e.test",
                               full_name="Dr Lena Length")
        make_certification(consultant)
        study = sentinel_study(owner, tmp_path / "ct")
        study.jurisdiction = "CA"
        req = opinions.create_request(study, owner, priority="routine", question="Mass?",
                                      colleague=consultant)
        opinions.accept(req, consultant)
        db.session.commit()
        req_id = req.id
    base = live_server.url

    # The consultant draws and saves the length in OHIF, opened from the request page.
    page = _page(webgl)
    sign_in(page, base, "ohif-consultant@e2e.test")
    page.goto(f"{base}/opinions/{req_id}")
    link = page.locator("a.ohif-link")
    expect(link).to_be_visible()
    assert link.get_attribute("href").endswith(f"&qaportal_context=opinion-request:{req_id}")
    with page.context.expect_page() as opened:
        link.click()  # OHIF opens in a tab of its own
    viewer = opened.value
    shown = draw_length(viewer)
    assert 5 < shown < 200, shown
    stowed = save_report(viewer, "Consult lengths")
    assert stowed.status == 200, stowed.text()
    headers = stowed.headers
    assert headers.get("x-qaportal-marks-linked") == f"opinion-request:{req_id}", headers
    assert "warning" not in headers, headers["warning"]
    assert csp_violations(viewer) == []
    viewer.close()

    # The consultant's request page lists it; then they write and sign the opinion.
    page.goto(f"{base}/opinions/{req_id}")
    marks = page.locator("#viewer-marks")
    # OHIF writes the report's name as the SR's SeriesDescription, which the portal does not
    # show; the document title is TID 1500's.
    expect(marks).to_contain_text("Measurement report “Imaging Measurement Report”")
    expect(marks).to_contain_text("Dr Lena Length")
    row = marks.locator("tbody tr").first
    expect(row).to_contain_text(re.compile(r"Length \d+(\.\d+)? mm"))
    portal_mm = float(re.search(r"Length (\d+(?:\.\d+)?) mm", row.inner_text()).group(1))
    assert abs(portal_mm - shown) < 0.051, (portal_mm, shown)
    expect(row).to_contain_text("Series 1 · image")
    expect(row).to_contain_text("polyline")
    page.click("#write-opinion")
    page.fill("#findings", "Soft-tissue mass measured in the viewer.")
    page.fill("#impression", "Mass, see the viewer measurement.")
    page.check("input[name=agreement][value=agree]")
    page.fill("#secret", DEFAULT_PASSWORD)
    page.once("dialog", lambda dialog: dialog.accept())  # "Sign this opinion?"
    page.click("#sign-btn")
    expect(page.locator(".flash-success")).to_contain_text("signed")
    expect(page.locator("#viewer-marks")).to_contain_text(f"Length {row_text(portal_mm)} mm")
    page.context.close()

    # The requester (the uploader) finds it on the opinion page and in the case packet.
    page = _page(webgl)
    sign_in(page, base, "ohif-uploader@e2e.test")
    page.goto(f"{base}/opinions/{req_id}")
    expect(page.locator("#viewer-marks")).to_contain_text("Dr Lena Length")
    expect(page.locator("#viewer-marks tbody tr").first).to_contain_text(
        f"Length {row_text(portal_mm)} mm")
    png = _key_image_on_page(page)
    assert _amber_pixels(png) > 40  # the line is drawn on the key image
    pdf = _download_packet(page, base, req_id)
    text = re.sub(r"\s+", " ", pdf_text(pdf))
    for needle in ("Viewer measurements", "Imaging Measurement Report", "Dr Lena Length",
                   f"Length {row_text(portal_mm)} mm", "Key images marked in the viewer",
                   "Series 1 · image"):
        assert needle in text, needle
    # The key image with the line drawn is embedded (the study's own images are not marked).
    assert sum(_amber_pixels(im) > 40 for im in _pdf_images(pdf, tmp_path / "pdf")) == 1
    page.context.close()


def _record_responses(context) -> list[tuple[str, int, bytes | None]]:
    """Every response any page of the context receives from now on, with its body (None
    for a redirect, or when the browser dropped it before it could be read)."""
    seen: list[tuple[str, int, bytes | None]] = []

    def on_response(r):
        # Read now: a page's bodies are gone once the browser navigates away.
        body = None
        if not 300 <= r.status < 400:
            try:
                body = r.body()
            except PlaywrightError:
                pass
        seen.append((r.url, r.status, body))

    context.on("response", on_response)
    return seen


def test_blind_reviewer_length_in_ohif_reaches_the_review_without_identifiers(
        live_server, webgl: Browser, tmp_path):
    from qaportal.dicomweb.access import deid_context
    from qaportal.models import OriginalRead, utcnow
    from tests.e2e.ohif_world import original_identifiers
    from tests.factories import make_assignment

    with live_server.app.app_context():
        reader = make_user(roles=("radiologist",), full_name="Dr Rufus Readerman")
        reviewer = make_user(roles=("reviewer",), email="ohif-blind@e2e.test")
        study = sentinel_study(reader, tmp_path / "ct")
        read = OriginalRead(study_id=study.id, reader_id=reader.id, report_text="No mass.",
                            finalized_at=utcnow(), entered_by_id=reader.id)
        db.session.add(read)
        db.session.flush()
        assignment = make_assignment(read, reviewer, deidentified=True)
        db.session.commit()
        forbidden = [*original_identifiers(study), "Rufus", "Readerman"]
        remapped = deid_context(study).new_uid_for(study.study_uid)
        assignment_id = assignment.id
    base = live_server.url
    page = _page(webgl)
    sign_in(page, base, "ohif-blind@e2e.test")
    responses = _record_responses(page.context)

    page.goto(f"{base}/reviews/{assignment_id}")
    link = page.locator("a.ohif-link")
    expect(link).to_be_visible()
    assert link.get_attribute("href") == (
        f"/viewer/ohif/viewer?StudyInstanceUIDs={remapped}"
        f"&qaportal_context=review-assignment:{assignment_id}")
    with page.context.expect_page() as opened:
        link.click()
    viewer = opened.value
    shown = draw_length(viewer)
    stowed = save_report(viewer, "Review lengths")
    assert stowed.status == 200, stowed.text()
    assert stowed.headers.get("x-qaportal-marks-linked") == (
        f"review-assignment:{assignment_id}"), stowed.headers
    assert csp_violations(viewer) == []
    viewer.close()

    # The review page shows the reviewer's own measurement and its key image.
    page.goto(f"{base}/reviews/{assignment_id}")
    marks = page.locator("#viewer-marks")
    expect(marks).to_contain_text("Your viewer measurements")
    row = marks.locator("tbody tr").first
    expect(row).to_contain_text(re.compile(r"Length \d+(\.\d+)? mm"))
    portal_mm = float(re.search(r"Length (\d+(?:\.\d+)?) mm", row.inner_text()).group(1))
    assert abs(portal_mm - shown) < 0.051, (portal_mm, shown)
    assert _amber_pixels(_key_image_on_page(page)) > 40

    # The review is submitted; its record lists the measurement.
    page.fill("textarea[name=impression]", "Soft-tissue mass, measured.")
    page.click("text=Save impression and reveal the original report")
    expect(page.locator("#original-report")).to_contain_text("No mass.")
    page.check("input[name=score][value='3b']")
    page.select_option("select[name=category]", "perceptual")
    page.fill("textarea[name=comment]", "Mass missed; see the measurement.")
    page.click("text=Submit review")
    expect(page.locator("#submitted-review")).to_contain_text("3b")
    expect(page.locator("#viewer-marks")).to_contain_text(f"Length {row_text(portal_mm)} mm")
    record = page.request.get(f"{base}/reviews/{assignment_id}/record.txt")  # a download
    assert record.status == 200 and f"Length {row_text(portal_mm)} mm" in record.text()
    responses.append((record.url, record.status, record.body()))
    page.context.close()

    # Nothing identifying reached the reviewer's browser, in any response.
    stows = [url for url, _, _ in responses if url.endswith("/dicomweb/studies")]
    assert len(stows) == 1, stows
    assert any("/key-images/" in url and body for url, _, body in responses)
    assert any(url.endswith("/metadata") and body for url, _, body in responses)
    assert any(url.endswith("/dicomweb/studies") and body for url, _, body in responses)
    read = {url for url, _, body in responses if body is not None}
    for url, status, body in responses:
        assert all(value not in url for value in forbidden), url
        if body is None:
            # a redirect, a static file (the portal's, the viewer's build) the browser
            # dropped unread, or a URL whose body was read at another load (an image of the
            # page being left: its body goes with the navigation) and is searched there
            assert 300 <= status < 400 or url in read or re.match(
                rf"{re.escape(base)}/(static|viewer/ohif)/[\w./-]+$", url), url
            continue
        low = body.lower()
        for value in forbidden:
            assert value.lower().encode() not in low, (value, url)
