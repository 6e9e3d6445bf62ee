"""Browser flows of the foundation: sign in per role, lockout, sign out, 2FA, new account."""

from __future__ import annotations

import time

import pyotp
import pytest
from playwright.sync_api import Page, expect

from qaportal.auth.service import FAILED_MESSAGE
from qaportal.demo.accounts import DEMO_ACCOUNTS, seed_accounts
from qaportal.extensions import db

PASSWORD = "demo-password-for-e2e-7"
NEW_PASSWORD = "violet-harbour-lantern-42"

# Demo accounts' navigation (the demo reviewer also reads as a radiologist).
NAV = {
    "radiologist": ["Home", "Studies", "Second opinions"],
    "radiologist2": ["Home", "Studies", "Second opinions", "Reviews"],
    "reviewer": ["Home", "Studies", "Second opinions", "Reviews"],
    "qa_manager": ["Home", "Studies", "Quality", "Reports", "Audit log"],
    "admin": ["Home", "Studies", "Reports", "Audit log", "Users"],
}


@pytest.fixture
def demo(live_server):
    with live_server.app.app_context():
        accounts = seed_accounts(PASSWORD)
        db.session.commit()
        emails = {key: user.email for key, user in accounts.items()}
        db.session.remove()
    return emails


def sign_in(page: Page, base: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


@pytest.mark.parametrize("key", list(DEMO_ACCOUNTS))
def test_each_demo_role_sees_its_navigation(page: Page, live_server, demo, key):
    sign_in(page, live_server.url, demo[key])
    expect(page.locator("main h1")).to_contain_text("Good day")  # one greeting, no flash
    expect(page.locator("nav.mainnav a")).to_have_text(NAV[key])


def test_lockout_after_repeated_wrong_passwords(page: Page, live_server, demo):
    # One answer for wrong, locked and unknown: the page never tells which accounts exist.
    for _ in range(5):
        sign_in(page, live_server.url, demo["reviewer"], "not-the-password-1")
        expect(page.locator(".flash-error")).to_have_text(FAILED_MESSAGE)
    sign_in(page, live_server.url, demo["reviewer"])
    expect(page.locator(".flash-error")).to_have_text(FAILED_MESSAGE)
    expect(page).to_have_url(f"{live_server.url}/login")
    sign_in(page, live_server.url, "nobody@demo.qaportal.test", "not-the-password-1")
    expect(page.locator(".flash-error")).to_have_text(FAILED_MESSAGE)


def test_sign_out(page: Page, live_server, demo):
    sign_in(page, live_server.url, demo["qa_manager"])
    page.click("text=Sign out")
    expect(page.locator(".flash-info")).to_have_text("You have signed out.")
    page.goto(f"{live_server.url}/audit/")
    expect(page).to_have_url(f"{live_server.url}/login?next=/audit/")


def test_enrol_totp_and_sign_in_with_a_code(page: Page, live_server, demo):
    sign_in(page, live_server.url, demo["radiologist"])
    page.goto(f"{live_server.url}/account")
    page.click("text=Set up two-factor sign-in")
    expect(page.locator(".qr img")).to_be_visible()
    secret = page.locator("#totp-secret").text_content().strip()
    totp = pyotp.TOTP(secret)
    page.fill("input[name=code]", totp.now())
    page.click("button:has-text('Turn on')")
    expect(page.locator(".flash-success")).to_contain_text("Two-factor sign-in is on")
    page.click("text=Sign out")
    sign_in(page, live_server.url, demo["radiologist"])
    expect(page).to_have_url(f"{live_server.url}/login/verify")
    # The enrolment code is spent; the next one is accepted (±30 s drift).
    page.fill("input[name=code]", totp.at(time.time() + 30))
    page.click("button:has-text('Verify')")
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.locator("h1")).to_contain_text("Dr. Ada Radley")


def test_admin_creates_a_user_who_must_change_the_temporary_password(
        page: Page, live_server, demo):
    base = live_server.url
    sign_in(page, base, demo["admin"])
    page.click("nav.mainnav >> text=Users")
    page.click("text=New user")
    page.fill("input[name=email]", "new.reader@example.org")
    page.fill("input[name=full_name]", "Dr. New Reader")
    page.check("input[name=roles][value=radiologist]")
    page.check("input[name=subspecialties][value=neuro]")
    page.click("button:has-text('Create account')")
    expect(page.locator("h1")).to_have_text("Account created")
    temporary = page.locator("#temp-password").text_content().strip()
    page.click("text=Sign out")

    sign_in(page, base, "new.reader@example.org", temporary)
    expect(page).to_have_url(f"{base}/account/password")
    page.goto(f"{base}/")  # nothing else is reachable before the change
    expect(page).to_have_url(f"{base}/account/password")
    page.fill("input[name=current_password]", temporary)
    page.fill("input[name=new_password]", NEW_PASSWORD)
    page.fill("input[name=confirm]", NEW_PASSWORD)
    page.click("button:has-text('Change password')")
    expect(page.locator(".flash-success")).to_contain_text("Your password was changed")
    page.goto(f"{base}/")
    expect(page.locator("h1")).to_contain_text("Dr. New Reader")
    expect(page.locator("nav.mainnav a")).to_contain_text(["Home", "Studies"])
    expect(page.locator("nav.mainnav a", has_text="Users")).to_have_count(0)
