"""A STAT second opinion end to end: request, claim, questions, opinion, signature, addendum."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from qaportal.extensions import db
from tests.factories import DEFAULT_PASSWORD, make_certification, make_study, make_user


def _login(page, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#email", email)
    page.fill("#password", DEFAULT_PASSWORD)
    page.click("button:has-text('Sign in')")
    expect(page.locator(".whoami")).to_be_visible()


def test_stat_pool_request_to_signed_opinion(live_server, browser):
    app = live_server.app
    app.config["OPINION_AUTOSAVE_SECONDS"] = 2
    with app.app_context():
        a = make_user(full_name="Dr Alice Asker", subspecialties=["body"], licenses=["CA"])
        b = make_user(full_name="Dr Bob Neuro", subspecialties=["neuro"], licenses=["CA"])
        make_certification(b)
        study = make_study(a, description="CT HEAD W/O CONTRAST",
                           report="Possible hypodensity left insula.")
        db.session.commit()
        a_email, b_email, study_id = a.email, b.email, study.id
    base = live_server.url
    ctx_a, ctx_b = browser.new_context(), browser.new_context()
    pa, pb = ctx_a.new_page(), ctx_b.new_page()
    pb.on("dialog", lambda dialog: dialog.accept())

    # A asks the neuro pool for a STAT opinion from the study page.
    _login(pa, base, a_email)
    pa.goto(f"{base}/studies/{study_id}")
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

    # B sees it at the top of the worklist with a running countdown, and claims it.
    _login(pb, base, b_email)
    pb.goto(f"{base}/opinions/")
    first = pb.locator("#my-worklist tbody tr").first
    expect(first).to_have_attribute("data-request-id", str(request_id))
    expect(first.locator(".prio")).to_have_text("STAT")
    expect(first.locator("[data-due]")).to_have_text(re.compile(r"^(59|60) min$|^1 h 00 min$"))
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
    expect(pb).to_have_url(re.compile(rf"/studies/{study_id}(/viewer)?$"))
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
