"""In the browser: a copied session cookie dies with sign-out; the bell shrinks when the
target page is opened; the home page greets once."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from qaportal.extensions import db
from qaportal.models import Notification
from tests.e2e.browser import sign_in
from tests.factories import make_user

COOKIE = "qaportal_session"


def _person(live_server, full_name: str = "Grace Hopper") -> tuple[str, int]:
    with live_server.app.app_context():
        user = make_user(full_name=full_name)
        db.session.commit()
        result = (user.email, user.id)
        db.session.remove()
    return result


def test_a_copied_cookie_is_refused_after_sign_out(page: Page, browser: Browser, live_server):
    email, _ = _person(live_server)
    sign_in(page, live_server.url, email)
    copied = [c for c in page.context.cookies() if c["name"] == COOKIE]
    assert copied
    page.click("form[action='/logout'] button")
    expect(page.locator(".flash-info")).to_have_text("You have signed out.")
    thief = browser.new_context()
    try:
        thief.add_cookies(copied)
        other = thief.new_page()
        other.goto(f"{live_server.url}/studies/")
        expect(other).to_have_url(f"{live_server.url}/login?next=/studies/")
        expect(other.locator("#email")).to_be_visible()
    finally:
        thief.close()


def test_bell_shrinks_when_the_target_page_is_opened_and_home_greets_once(page: Page,
                                                                          live_server):
    email, user_id = _person(live_server, "Ada Lovelace")
    with live_server.app.app_context():
        db.session.add(Notification(user_id=user_id, kind="x", message="See your account",
                                    link="/account"))
        db.session.commit()
        db.session.remove()
    sign_in(page, live_server.url, email)
    expect(page.locator("main h1")).to_have_text("Good day, Ada Lovelace")
    expect(page.locator(".flash-success")).to_have_count(0)  # no second greeting
    expect(page.locator("#bell")).to_have_attribute("aria-label", "Notifications: 1 unread")
    page.goto(f"{live_server.url}/account")  # as from the e-mail's link
    expect(page.locator("#bell")).to_have_attribute("aria-label", "Notifications: 0 unread")
