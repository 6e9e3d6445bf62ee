"""In a browser: a folder through the directory picker, with per-file progress, and
a summary that lists every file not stored, the browser's own rejections included."""

from __future__ import annotations

import base64

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from qaportal.extensions import db
from tests.conftest import make_test_app
from tests.e2e.browser import sign_in
from tests.e2e.conftest import LiveServer
from tests.factories import make_user
from tests.studyfiles import exam_folder, sample

# Keep, across the navigation to the summary, how many per-file bars reached 100.
WATCH_FILE_BARS = """() => {
  const list = document.getElementById('file-list');
  sessionStorage.setItem('fullBars', '0');
  new MutationObserver(() => {
    const full = [...list.querySelectorAll('progress.file-progress')]
      .filter(p => p.value === 100).length;
    if (full > parseInt(sessionStorage.getItem('fullBars'), 10)) {
      sessionStorage.setItem('fullBars', String(full));
    }
  }).observe(list, { attributes: true, childList: true, subtree: true });
}"""


@pytest.fixture
def small_limit_server(tmp_path):
    """The portal with a 300 kB request limit and one file per request part."""
    app = make_test_app(tmp_path, f"sqlite:///{tmp_path / 'e2e.sqlite'}",
                        WTF_CSRF_ENABLED=True, TESTING=False,
                        MAX_CONTENT_LENGTH=300_000, UPLOAD_CHUNK_BYTES=1)
    server = LiveServer(app).start()
    yield server
    server.stop()


def test_folder_picker_upload_lists_every_file_not_stored(small_limit_server, page: Page,
                                                          tmp_path):
    folder = exam_folder(tmp_path / "exam", slices=6, patient=("FOLDER^PATIENT", "F0001"),
                         series_description="FOLDER AXIAL")
    (folder / "notes.txt").write_text("not an image\n")
    (folder / "big").mkdir()
    (folder / "big" / "scan.dcm").write_bytes(b"\0" * 400_000)  # over the request limit
    # Under the limit itself, over it with the request's framing: the server answers 413.
    (folder / "big" / "edge.dcm").write_bytes(b"\0" * 299_990)
    server = small_limit_server
    with server.app.app_context():
        email = make_user(roles=("radiologist",), email="folder@example.test").email
        db.session.commit()
    sign_in(page, server.url, email)

    page.goto(f"{server.url}/studies/upload")
    page.set_input_files("#folder-input", str(folder))
    expect(page.locator("#selection")).to_contain_text("10 files chosen")
    page.evaluate(WATCH_FILE_BARS)
    page.click("#upload-button")
    expect(page.locator("#upload-summary")).to_be_visible(timeout=30_000)

    # Every file sent alone reached a full bar of its own: 6 slices, MR and notes.txt.
    assert int(page.evaluate("sessionStorage.getItem('fullBars')")) >= 8
    expect(page.locator("#count-stored")).to_have_text("7")
    rows = page.locator("#rejected tbody tr")
    expect(rows).to_have_count(3)
    reasons = dict(zip(rows.locator("td:first-child").all_inner_texts(),
                       rows.locator("td:nth-child(2)").all_inner_texts(), strict=True))
    assert set(reasons) == {"exam/notes.txt", "exam/big/scan.dcm", "exam/big/edge.dcm"}
    assert reasons["exam/notes.txt"] == "not a DICOM file"
    assert "larger than the 0.29 MB limit" in reasons["exam/big/scan.dcm"]
    assert "upload too large: the limit is 0.29 MB" in reasons["exam/big/edge.dcm"]
    expect(page.locator("#count-rejected")).to_have_text("3")

    # The stored studies: the folder's CT series under its patient, and the MR image.
    page.locator("tr", has_text="FOLDER, PATIENT").locator("a").first.click()
    expect(page.locator("#series .series-card")).to_have_count(1)
    with server.app.app_context():
        from qaportal.models import Study

        counts = sorted((s.instance_count, s.series_count)
                        for s in db.session.scalars(sa.select(Study)))
        assert counts == [(1, 1), (6, 1)]


DROP_FILES = """(files) => {
  const dt = new DataTransfer();
  for (const [name, b64] of files) {
    const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
    dt.items.add(new File([bytes], name));
  }
  return dt;
}"""


def test_files_dropped_on_the_dropzone_are_uploaded(small_limit_server, page: Page):
    server = small_limit_server
    with server.app.app_context():
        email = make_user(roles=("radiologist",), email="drop@example.test").email
        db.session.commit()
    sign_in(page, server.url, email)
    page.goto(f"{server.url}/studies/upload")
    files = [["MR_small.dcm", base64.b64encode(sample("MR_small.dcm").read_bytes()).decode()],
             ["readme.txt", base64.b64encode(b"hello").decode()]]
    transfer = page.evaluate_handle(DROP_FILES, files)
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})
    expect(page.locator("#selection")).to_contain_text("2 files chosen")
    page.click("#upload-button")
    expect(page.locator("#upload-summary")).to_be_visible(timeout=30_000)
    expect(page.locator("#count-stored")).to_have_text("1")
    expect(page.locator("#rejected tbody tr")).to_have_count(1)
    expect(page.locator("#rejected tbody tr").first).to_contain_text("readme.txt")
