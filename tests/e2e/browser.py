"""Steps the browser tests share."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.factories import DEFAULT_PASSWORD


def sign_in(page: Page, base: str, email: str) -> None:
    """Sign in through the login form and wait until the portal shows who is signed in."""
    page.goto(f"{base}/login")
    page.fill("#email", email)
    page.fill("#password", DEFAULT_PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator(".whoami")).to_be_visible()
