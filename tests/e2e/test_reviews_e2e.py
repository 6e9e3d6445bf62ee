"""Browser: sample with a seed, blind review scored 3b, committee, decision, reader feedback."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from qaportal.extensions import db
from tests.factories import DEFAULT_PASSWORD, make_rule, make_study, make_user

READER = "Zebulon Quirkfeather"
REVIEWER = "Ottoline Vantablack"


def _login(page: Page, base: str, email: str) -> None:
    page.goto(f"{base}/")
    sign_out = page.locator("button:has-text('Sign out')")
    if sign_out.count():
        sign_out.click()
        expect(page.locator("input[name=email]")).to_be_visible()
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", DEFAULT_PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator(".whoami")).to_be_visible()


def _no_names(page: Page, *names: str) -> None:
    html = page.content().lower()
    for name in names:
        for part in name.lower().split():
            assert part not in html, f"{part} visible on {page.url}"


@pytest.fixture
def people(live_app):
    with live_app.app_context():
        reader = make_user(["radiologist"], full_name=READER, email="reader@e2e.test")
        make_user(["reviewer"], full_name=REVIEWER, email="reviewer@e2e.test")
        m1 = make_user(["radiologist"], full_name="Cornelius Fairweather", email="m1@e2e.test")
        m2 = make_user(["radiologist"], full_name="Drusilla Pemberton", email="m2@e2e.test")
        qa = make_user(["qa_manager"], full_name="Quinn Manager", email="qa@e2e.test")
        for i in range(3):
            make_study(reader, reader=reader, description=f"CT CHEST {i}",
                       report=f"No nodule.\nDictated by {READER}.")
        rule = make_rule(qa, name="E2E rule", percent=100.0)
        db.session.commit()
        yield {"rule_id": rule.id, "m1": m1.id, "m2": m2.id}
        db.session.remove()


def test_blind_review_to_reader_feedback(page: Page, live_server, people):
    base = live_server.url
    # QA manager previews a seeded run twice: the same selection; then commits it.
    _login(page, base, "qa@e2e.test")
    page.goto(f"{base}/qa/rules/{people['rule_id']}/run?seed=4242")
    first = page.locator("td.read-id").all_inner_texts()
    assert len(first) == 3
    page.goto(f"{base}/qa/rules/{people['rule_id']}/run?seed=4242")
    assert page.locator("td.read-id").all_inner_texts() == first
    expect(page.locator("#run-seed")).to_have_text("4242")
    page.click("text=Commit this selection")
    expect(page.locator("#reproduced")).to_contain_text("yes")
    expect(page.locator("#run-seed")).to_have_text("4242")

    # The reviewer works blind: the reader's name is nowhere.
    _login(page, base, "reviewer@e2e.test")
    page.goto(f"{base}/reviews/")
    _no_names(page, READER)
    page.locator("#open-reviews a").first.click()
    _no_names(page, READER)
    expect(page.locator("#original-report")).to_have_count(0)
    page.fill("textarea[name=impression]", "Spiculated nodule right upper lobe.")
    page.click("text=Save impression and reveal the original report")
    expect(page.locator("#original-report")).to_contain_text("No nodule.")
    _no_names(page, READER)
    page.check("input[name=score][value='3b']")
    page.select_option("select[name=category]", "perceptual")
    page.fill("textarea[name=comment]", "Missed spiculated RUL nodule.")
    page.click("text=Submit review")
    expect(page.locator("#submitted-review")).to_contain_text("3b")
    _no_names(page, READER)

    # The QA manager convenes a committee.
    _login(page, base, "qa@e2e.test")
    page.goto(f"{base}/qa/cases")
    page.locator("#cases a").first.click()
    expect(page.locator("body")).to_contain_text(READER)  # QA sees both identities
    page.check(f"#committee-form input[value='{people['m1']}']")
    page.check(f"#committee-form input[value='{people['m2']}']")
    page.click("text=Assign committee")
    expect(page.locator("#case-status")).to_have_text("Committee scoring")
    case_url = page.url

    # Members score independently.
    for email, score in (("m1@e2e.test", "3b"), ("m2@e2e.test", "3a")):
        _login(page, base, email)
        page.goto(f"{base}/reviews/committee")
        page.locator("#committee-cases a").first.click()
        _no_names(page, READER, REVIEWER)
        page.check(f"#vote-form input[name=score][value='{score}']")
        page.fill("#vote-form textarea[name=comment]", f"Scored {score} by a member.")
        page.click("text=Submit my score")
        expect(page.locator("#votes")).to_contain_text(score)

    # The QA manager records the consensus.
    _login(page, base, "qa@e2e.test")
    page.goto(case_url)
    page.select_option("select[name=final_score]", "3b")
    page.select_option("select[name=outcome]", "upheld")
    page.fill("textarea[name=rationale]", "A spiculated nodule should be reported.")
    page.click("text=Record decision")
    expect(page.locator("#case-status")).to_have_text("Feedback with reader")

    # The reader sees the feedback without the reviewer's name and acknowledges it.
    _login(page, base, "reader@e2e.test")
    page.goto(f"{base}/reviews/feedback")
    page.locator("#feedback-cases a").first.click()
    expect(page.locator("#decision")).to_contain_text("3b")
    expect(page.locator("#decision")).to_contain_text("spiculated nodule should be reported")
    _no_names(page, REVIEWER, "Cornelius Fairweather", "Drusilla Pemberton")
    page.fill("textarea[name=response]", "Understood, thank you.")
    page.click("input[name=acknowledge]")
    expect(page.locator("#feedback-response")).to_contain_text(re.compile("closed"))
    _no_names(page, REVIEWER)
