"""Layout a first day shows: small images fit the viewer; at phone width every wide table
scrolls inside its card and no page scrolls sideways."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pydicom
from playwright.sync_api import Page, expect

from qaportal.extensions import db
from qaportal.models import utcnow
from qaportal.studies import jobs
from tests.e2e.browser import sign_in
from tests.factories import make_assignment, make_opinion_request, make_study, make_user
from tests.pdftools import ARTIFACTS
from tests.studyfiles import sample

# How large the frame is drawn compared with its pixels, and whether it fits the stage.
DRAWN_SCALE = """() => {
  const img = document.getElementById('viewer-image');
  const stage = document.getElementById('stage').getBoundingClientRect();
  const box = img.getBoundingClientRect();
  const scale = Math.min(box.width / img.naturalWidth, box.height / img.naturalHeight);
  return { scale: scale, drawnW: img.naturalWidth * scale, drawnH: img.naturalHeight * scale,
           stageW: stage.width, stageH: stage.height };
}"""

# Tables in the page body that stick out of the element that holds them, and whether the page
# itself scrolls sideways.
OVERFLOW = """() => {
  const out = [];
  document.querySelectorAll('main table').forEach((t, i) => {
    const box = t.getBoundingClientRect();
    const parent = t.parentElement.getBoundingClientRect();
    if (box.right > parent.right + 1 || box.right > window.innerWidth + 1) {
      out.push((t.id || t.className || 'table') + '#' + i);
    }
  });
  return { tables: out, pageScrolls: document.documentElement.scrollWidth > window.innerWidth + 1 };
}"""


def _tiny_copy(dest, size: int):
    """A real CT slice cut down to size x size pixels."""
    ds = pydicom.dcmread(sample("CT_small.dcm"))
    arr = ds.pixel_array[:size, :size].copy()
    ds.Rows, ds.Columns = size, size
    ds.PixelData = arr.tobytes()
    ds.SOPInstanceUID = f"2.25.{uuid.uuid4().int}"
    ds.SeriesInstanceUID = f"2.25.{uuid.uuid4().int}"
    ds.SeriesDescription = f"TINY {size}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dest)
    return dest


def test_small_images_are_scaled_to_fit_the_viewer(live_server, page: Page, tmp_path):
    paths = [_tiny_copy(tmp_path / f"tiny{n}.dcm", n) for n in (16, 64)]
    with live_server.app.app_context():
        owner = make_user(roles=("radiologist",))
        batch = jobs.new_batch(owner, "cli")
        db.session.commit()
        jobs.import_files(paths, owner.id, batch.id)
        email = owner.email
        from qaportal.models import Series, Study

        study = db.session.scalars(db.select(Study)).one()
        series = {s.series_description: s.id for s in db.session.scalars(
            db.select(Series).where(Series.study_id == study.id))}
        study_id = study.id
    sign_in(page, live_server.url, email)
    for size in (16, 64):
        page.goto(f"{live_server.url}/studies/{study_id}/viewer?series={series[f'TINY {size}']}")
        expect(page.locator("#viewer-image")).to_have_attribute(
            "data-loaded", re.compile(r"/frames/0\.png"))
        drawn = page.evaluate(DRAWN_SCALE)
        # Fit to window: the square image fills the stage's smaller side.
        assert drawn["scale"] > 4, drawn
        assert abs(min(drawn["stageW"], drawn["stageH"]) - drawn["drawnW"]) < 2, drawn
        expect(page.locator("#overlay-br")).to_contain_text("Zoom 100%")


def _phone_world():
    owner = make_user(roles=("radiologist",), full_name="Rhea Requester")
    consultant = make_user(roles=("radiologist",), full_name="Nadia Neuro",
                           subspecialties=["neuro"], licenses=["CA"])
    reviewer = make_user(roles=("reviewer",), full_name="Rory Reviewer")
    qa = make_user(roles=("qa_manager",), full_name="Quinn Quality")
    for i in range(4):
        study = make_study(owner, description="CT HEAD W/O CONTRAST WITH A LONG DESCRIPTION",
                           patient_name=f"LONGFAMILYNAME{i}^GIVENNAME", report=None)
        make_opinion_request(study, owner, priority=("stat", "urgent", "routine", "routine")[i],
                             question="Subtle hyperdensity in the left sylvian fissure? "
                                      "Please compare with the prior CT of last week.")
    for i in range(3):
        study = make_study(owner, description="MR LUMBAR SPINE W/O CONTRAST",
                           patient_name=f"SPINE{i}^PATIENT",
                           finalized_at=utcnow() - timedelta(days=3 + i))
        make_assignment(study.read, reviewer)
    db.session.commit()
    return {"radiologist": owner.email, "consultant": consultant.email,
            "reviewer": reviewer.email, "qa_manager": qa.email}


PHONE_PAGES = {
    "consultant": ["/opinions/", "/studies/"],
    "radiologist": ["/opinions/", "/studies/"],
    "reviewer": ["/reviews/", "/studies/"],
    "qa_manager": ["/qa/", "/qa/reviews", "/qa/stats", "/audit/", "/studies/"],
}


def test_phone_width_tables_scroll_inside_their_card(live_server, browser):
    with live_server.app.app_context():
        emails = _phone_world()
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        for who, paths in PHONE_PAGES.items():
            page = context.new_page()
            sign_in(page, live_server.url, emails[who])
            for path in paths:
                page.goto(f"{live_server.url}{path}")
                assert page.locator("main table").count() > 0, path
                result = page.evaluate(OVERFLOW)
                assert result == {"tables": [], "pageScrolls": False}, (who, path, result)
            if who == "consultant":
                page.goto(f"{live_server.url}/opinions/")
                page.screenshot(path=str(ARTIFACTS / "phone-worklist.png"), full_page=True)
            if who == "reviewer":
                page.goto(f"{live_server.url}/reviews/")
                page.screenshot(path=str(ARTIFACTS / "phone-review-worklist.png"),
                                full_page=True)
            page.context.clear_cookies()
            page.close()
    finally:
        context.close()
