"""In a browser: a folder holding several studies, the context typed once on the
upload page applied to none of them, then filled in study by study on the summary."""

from __future__ import annotations

import pydicom
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from qaportal.extensions import db
from tests.e2e.browser import sign_in
from tests.factories import make_user
from tests.studyfiles import exam_folder, modified_copy

SHARED_QUESTION = "Headache, rule out bleed."
SHARED_REPORT = "IMPRESSION: No acute intracranial abnormality."


def _several_studies(dest):
    """A folder of three studies: a CT series, MR_small and a CT perfusion image."""
    folder = exam_folder(dest, slices=3, patient=("MULTI^STUDY", "M0001"),
                         series_description="HEAD AXIAL")
    modified_copy("CT_small.dcm", folder / "perfusion" / "p1.dcm",
                  StudyInstanceUID=pydicom.uid.generate_uid(),
                  SeriesInstanceUID=pydicom.uid.generate_uid(),
                  SOPInstanceUID=pydicom.uid.generate_uid(), StudyDescription="CT PERFUSION")
    return folder


def _form(page: Page, text: str):
    return page.locator("form.study-context", has_text=text)


def test_folder_of_several_studies_gets_its_context_study_by_study(live_server, page: Page,
                                                                   tmp_path):
    folder = _several_studies(tmp_path / "exam")
    with live_server.app.app_context():
        email = make_user(roles=("radiologist",), email="multi@example.test").email
        db.session.commit()
    sign_in(page, live_server.url, email)

    page.goto(f"{live_server.url}/studies/upload")
    page.fill("#clinical_question", SHARED_QUESTION)
    page.fill("#report_text", SHARED_REPORT)
    page.check("#finalize_now")
    page.set_input_files("#folder-input", str(folder))
    expect(page.locator("#selection")).to_contain_text("5 files chosen")
    page.click("#upload-button")
    expect(page.locator("#upload-summary")).to_be_visible(timeout=30_000)

    # Typed once for three studies: applied to none, offered to each with a confirmation.
    expect(page.locator(".flash-warning")).to_contain_text("applied to none of them")
    expect(page.locator("form.study-context")).to_have_count(3)
    expect(page.locator(".read-status", has_text="needs its read")).to_have_count(3)
    with live_server.app.app_context():
        from qaportal.models import OriginalRead

        assert db.session.scalars(sa.select(OriginalRead)).all() == []

    # The MR gets its own question and report.
    mr = _form(page, "· MR ·")
    mr.locator("textarea[name$=clinical_question]").fill("Right upper quadrant pain.")
    mr.locator("textarea[name$=report_text]").fill("IMPRESSION: Simple hepatic cyst.")
    mr.locator("input[name$=finalize_now]").uncheck()
    mr.locator("button[type=submit]").click()
    expect(page.locator(".flash-success")).to_contain_text("MR")

    # The perfusion study keeps the text typed once: refused until its own box is ticked.
    perfusion = _form(page, "CT PERFUSION")
    expect(perfusion.locator("textarea[name$=report_text]")).to_have_value(SHARED_REPORT)
    perfusion.locator("button[type=submit]").click()
    perfusion = _form(page, "CT PERFUSION")
    expect(perfusion.locator(".error")).to_contain_text("Tick the box to confirm")
    expect(perfusion.locator("textarea[name$=report_text]")).to_have_value(SHARED_REPORT)
    perfusion.locator("input[name$=confirm_study]").check()
    perfusion.locator("button[type=submit]").click()
    expect(page.locator(".flash-success")).to_contain_text("CT PERFUSION")

    # The head CT series gets a report of its own.
    head = page.locator("form.study-context").filter(has_not_text="CT PERFUSION").filter(
        has_not_text="· MR ·")
    head.locator("textarea[name$=clinical_question]").fill("Fall, head strike.")
    head.locator("textarea[name$=report_text]").fill("IMPRESSION: No fracture.")
    head.locator("button[type=submit]").click()
    expect(page.locator(".flash-success")).to_be_visible()
    expect(page.locator(".read-status", has_text="needs its read")).to_have_count(0)

    with live_server.app.app_context():
        from qaportal.models import Study

        got = {(s.modalities, s.study_description == "CT PERFUSION"):
               (s.clinical_question, s.read.report_text, s.read.is_final)
               for s in db.session.scalars(sa.select(Study))}
    assert got == {
        ("MR", False): ("Right upper quadrant pain.", "IMPRESSION: Simple hepatic cyst.", False),
        ("CT", True): (SHARED_QUESTION, SHARED_REPORT, True),
        ("CT", False): ("Fall, head strike.", "IMPRESSION: No fracture.", True),
    }
