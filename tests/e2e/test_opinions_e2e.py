"""A STAT second opinion end to end: upload, request, claim, questions, viewer, opinion,
signature, notification, addendum."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from qaportal.extensions import db
from tests.e2e.browser import sign_in
from tests.factories import (
    DEFAULT_PASSWORD,
    make_certification,
    make_opinion_request,
    make_study,
    make_user,
)
from tests.studyfiles import exam_folder


@pytest.fixture
def exam(tmp_path):
    """What radiologist A uploads: a small CT series (from pydicom's CT_small) and MR_small."""
    folder = exam_folder(tmp_path / "exam", slices=3, patient=("OPINION^E2E", "OPN0001"),
                         series_description="HEAD AXIAL")
    return sorted(str(p) for p in folder.rglob("*.dcm"))


def test_stat_pool_request_to_signed_opinion(live_server, browser, exam):
    app = live_server.app
    app.config["OPINION_AUTOSAVE_SECONDS"] = 2
    with app.app_context():
        a = make_user(full_name="Dr Alice Asker", subspecialties=["body"], licenses=["CA"])
        b = make_user(full_name="Dr Bob Neuro", subspecialties=["neuro"], licenses=["CA"])
        make_certification(b)
        # Work already waiting in the neuro pool, due later than a STAT request will be.
        routine = make_opinion_request(make_study(a), a, priority="routine")
        urgent = make_opinion_request(make_study(a), a, priority="urgent")
        db.session.commit()
        a_email, b_email = a.email, b.email
        earlier = [urgent.id, routine.id]
    base = live_server.url
    ctx_a, ctx_b = browser.new_context(), browser.new_context()
    pa, pb = ctx_a.new_page(), ctx_b.new_page()
    pb.on("dialog", lambda dialog: dialog.accept())

    # A uploads the exam through the upload page, with jurisdiction and report.
    sign_in(pa, base, a_email)
    pa.goto(f"{base}/studies/upload")
    pa.set_input_files("#file-input", exam)
    expect(pa.locator("#selection")).to_contain_text("4 files chosen")
    pa.fill("#jurisdiction", "CA")
    pa.fill("#report_text", "Possible hypodensity left insula.")
    pa.click("#upload-button")
    expect(pa.locator("#upload-summary")).to_be_visible(timeout=30_000)
    expect(pa.locator("#count-stored")).to_have_text("4")
    # The folder holds two studies: what was typed once goes to the CT on its confirmation.
    ct_form = pa.locator("form.study-context", has_text="· CT ·")
    ct_form.locator("input[name$=confirm_study]").check()
    ct_form.locator("button[type=submit]").click()
    expect(pa.locator(".flash-success")).to_be_visible()
    pa.locator("tr", has_text="OPINION, E2E").locator("a").first.click()
    study_id = int(re.search(r"/studies/(\d+)$", pa.url).group(1))

    # A asks the neuro pool for a STAT opinion from the study page.
    pa.click("text=Ask for a second opinion")
    expect(pa.locator("#preliminary_read")).to_have_value("Possible hypodensity left insula.")
    pa.fill("#clinical_question", "Early infarct in the left insula?")
    pa.select_option("#priority", "stat")
    pa.check("input[name=recipient][value=pool]")
    pa.select_option("#pool", "neuro")
    pa.click("button:has-text('Send request')")
    expect(pa.locator(".flash-success")).to_contain_text("sent")
    request_url = pa.url
    request_id = int(re.search(r"/opinions/(\d+)", request_url).group(1))

    # B sees it at the top of the worklist, above the earlier urgent and routine requests,
    # with a countdown that the page's clock keeps running.
    pb.clock.install()
    sign_in(pb, base, b_email)
    pb.goto(f"{base}/opinions/")
    rows = pb.locator("#my-worklist tbody tr")
    expect(rows).to_have_count(3)
    ids = [int(x) for x in rows.evaluate_all("rs => rs.map(r => r.dataset.requestId)")]
    assert ids == [request_id, *earlier]
    first = rows.first
    expect(first.locator(".prio")).to_have_text("STAT")
    countdown = first.locator("[data-due]")
    expect(countdown).to_have_text(re.compile(r"^(5[89]|60) min$|^1 h 00 min$"))
    before = countdown.inner_text()
    pb.clock.run_for("05:00")  # five minutes pass: the 15-second tick updates the text
    expect(countdown).not_to_have_text(before)
    expect(countdown).to_have_text(re.compile(r"^5[3-5] min$"))
    first.locator("button:has-text('Claim')").click()
    expect(pb.locator(".flash-success")).to_contain_text("claimed")

    # B asks a question; A answers.
    pb.fill("#body", "Was contrast given on the prior study?")
    pb.click("button:has-text('Send message')")
    expect(pb.locator("#thread")).to_contain_text("Was contrast given on the prior study?")
    pa.goto(request_url)
    expect(pa.locator("#thread")).to_contain_text("Was contrast given on the prior study?")
    pa.fill("#body", "No contrast; the prior was a plain CT.")
    pa.click("button:has-text('Send message')")
    pb.reload()
    expect(pb.locator("#thread")).to_contain_text("No contrast; the prior was a plain CT.")

    # B opens the images, then writes (autosaved) and signs the opinion.
    pb.click("#open-images")
    expect(pb).to_have_url(re.compile(rf"/studies/{study_id}/viewer(\?.*)?$"))
    image = pb.locator("#viewer-image")
    expect(image).to_have_attribute("data-loaded", re.compile(r"/frames/0\.png$"))
    assert pb.evaluate("document.getElementById('viewer-image').naturalWidth") > 0
    expect(pb.locator("#frame-error")).to_be_hidden()
    pb.goto(request_url)
    pb.click("#write-opinion")
    pb.fill("#findings", "Loss of grey-white differentiation in the left insula.")
    pb.fill("#impression", "Early left MCA territory infarct.")
    pb.check("input[name=agreement][value=agree]")
    expect(pb.locator("#autosave-status")).to_contain_text("Draft saved", timeout=10000)
    pb.fill("#secret", DEFAULT_PASSWORD)
    pb.click("#sign-btn")
    expect(pb.locator(".flash-success")).to_contain_text("signed")
    expect(pb.locator("#signature")).to_contain_text("Dr Bob Neuro")
    expect(pb.locator("#signature")).to_contain_text("CA")

    # A is notified (bell) and reads the opinion.
    pa.goto(f"{base}/")
    expect(pa.locator("#bell-count")).to_have_text(re.compile(r"^[1-9]\d*$"))
    pa.click("#bell")
    pa.click("button:has-text('signed the opinion')")
    expect(pa).to_have_url(re.compile(rf"/opinions/{request_id}$"))
    expect(pa.locator("#opinion")).to_contain_text("Early left MCA territory infarct.")
    expect(pa.locator("#opinion")).to_contain_text("American Board of Radiology")

    # An addendum follows, with its own signature.
    pb.click("#add-addendum summary")
    pb.fill("#text", "Compared with the outside MRI: diffusion restriction confirmed.")
    pb.fill("#add-addendum #secret", DEFAULT_PASSWORD)
    pb.click("button:has-text('Sign addendum')")
    expect(pb.locator(".flash-success")).to_contain_text("Addendum signed")
    pa.reload()
    expect(pa.locator("#addendum-1")).to_contain_text("diffusion restriction confirmed")
    expect(pa.locator("#addendum-1 .signature")).to_contain_text("Dr Bob Neuro")
    ctx_a.close()
    ctx_b.close()
