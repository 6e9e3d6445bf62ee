"""In a browser: upload a folder, open the study, scroll and window it, download it."""

from __future__ import annotations

import io
import re
import zipfile

import pydicom
import pytest
from playwright.sync_api import Page, expect

from qaportal.extensions import db
from tests.e2e.browser import sign_in
from tests.factories import make_user
from tests.studyfiles import exam_folder

# Remember how far the progress bar got, across the navigation to the summary page.
WATCH_PROGRESS = """() => {
  const box = document.getElementById('overall-progress');
  sessionStorage.setItem('maxProgress', '0');
  new MutationObserver(() => {
    const v = parseInt(box.getAttribute('aria-valuenow'), 10);
    if (v > parseInt(sessionStorage.getItem('maxProgress'), 10)) {
      sessionStorage.setItem('maxProgress', String(v));
    }
  }).observe(box, { attributes: true });
}"""


@pytest.fixture
def upload_folder(tmp_path):
    """A folder as a user would pick it: 20 CT slices, an MR image and a stray text file."""
    folder = exam_folder(tmp_path / "exam", slices=20, patient=("E2E^PATIENT", "E2E0001"),
                         series_description="E2E AXIAL")
    (folder / "notes.txt").write_text("Patient was cooperative.\n")
    return folder


def test_upload_view_scroll_window_and_download(live_server, page: Page, upload_folder):
    with live_server.app.app_context():
        user = make_user(roles=("radiologist",), email="e2e-viewer@example.test")
        db.session.commit()
        email = user.email
    base = live_server.url
    sign_in(page, base, email)

    # Upload the folder's files with progress, then read the summary.
    page.goto(f"{base}/studies/upload")
    files = sorted(str(p) for p in upload_folder.rglob("*") if p.is_file())
    assert len(files) == 22
    page.set_input_files("#file-input", files)
    expect(page.locator("#selection")).to_contain_text("22 files chosen")
    page.evaluate(WATCH_PROGRESS)
    page.click("#upload-button")
    expect(page.locator("#upload-summary")).to_be_visible(timeout=30_000)
    assert page.evaluate("sessionStorage.getItem('maxProgress')") == "100"
    expect(page.locator("#count-stored")).to_have_text("21")
    expect(page.locator("#count-rejected")).to_have_text("1")
    rejected = page.locator("#rejected tbody tr")
    expect(rejected).to_have_count(1)
    expect(rejected.first).to_contain_text("notes.txt")
    expect(rejected.first.locator("td").nth(1)).to_have_text("not a DICOM file")

    # Open the CT study and its viewer.
    page.locator("tr", has_text="E2E, PATIENT").locator("a").first.click()
    expect(page.locator("#series .series-card")).to_have_count(1)
    page.click("#open-viewer")
    counter = page.locator("#slice-counter")
    expect(counter).to_have_text("1 / 20")
    image = page.locator("#viewer-image")
    expect(image).to_have_attribute("data-loaded", re.compile(r"/frames/0\.png$"))
    expect(page.locator("#overlay-tl")).to_contain_text("E2E, PATIENT")  # full access: owner
    expect(page.locator("#frame-error")).to_be_hidden()

    # Scroll with the wheel and the keyboard.
    page.hover("#stage")
    page.mouse.wheel(0, 120)
    expect(counter).to_have_text("2 / 20")
    page.keyboard.press("ArrowDown")
    expect(counter).to_have_text("3 / 20")
    page.mouse.wheel(0, -120)
    expect(counter).to_have_text("2 / 20")
    first_src = image.get_attribute("data-src")
    assert "wc=" not in first_src

    # Change the window preset: the frame is asked for again with the new window, and shown.
    page.select_option("#wl-preset", "Lung")
    expect(image).to_have_attribute("data-src", re.compile(r"\?wc=-600&ww=1500$"))
    expect(image).to_have_attribute("data-loaded", re.compile(r"\?wc=-600&ww=1500$"))
    assert page.evaluate("document.getElementById('viewer-image').naturalWidth") == 128
    expect(page.locator("#overlay-br")).to_contain_text("W 1500 / L -600")
    page.select_option("#wl-preset", "Bone")
    expect(image).to_have_attribute("data-loaded", re.compile(r"\?wc=400&ww=1800$"))

    # A stored file that no longer matches its SHA-256 shows a placeholder and says why.
    last_url = page.evaluate("fetch(location.pathname.replace('/viewer', '') + "
                             "'/series/' + new URL(location.href).searchParams.get('series') + "
                             "'/frames.json').then(r => r.json()).then(j => j.frames[19].url)")
    instance_id = int(re.search(r"/instances/(\d+)/", last_url).group(1))
    with live_server.app.app_context():
        from qaportal.models import Instance
        from qaportal.studies.storage import image_store

        path = image_store().path(db.session.get(Instance, instance_id).storage_key)
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 0xFF
    path.write_bytes(bytes(raw))
    page.focus("#stage")
    page.keyboard.press("End")
    expect(counter).to_have_text("20 / 20")
    expect(page.locator("#frame-error")).to_be_visible()
    expect(page.locator("#frame-error")).to_contain_text("integrity")
    page.keyboard.press("Home")
    expect(page.locator("#frame-error")).to_be_hidden()
    raw[-10] ^= 0xFF  # repair it, so that the download below can be built
    path.write_bytes(bytes(raw))

    # Back to the study: download the de-identified copy.
    page.click("#back-to-study")
    with page.expect_download() as info:
        page.click("#download-deid")
    data = open(info.value.path(), "rb").read()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = [n for n in zf.namelist() if n.endswith(".dcm")]
        assert len(names) == 20
        ds = pydicom.dcmread(io.BytesIO(zf.read(names[0])))
    assert ds.PatientIdentityRemoved == "YES"
    assert "E2E" not in str(ds.PatientName)
