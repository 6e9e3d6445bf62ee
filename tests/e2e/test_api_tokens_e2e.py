"""In the browser: create an API token on the account page, see it once, use it over real
HTTP, revoke it; then the API refuses it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import Page, expect

from qaportal.extensions import db
from tests.conftest import make_test_app
from tests.e2e.browser import sign_in
from tests.factories import DEFAULT_PASSWORD, make_user
from tests.test_api_tokens import PROBE, add_probe


@pytest.fixture
def live_app(tmp_path):
    """The e2e app (CSRF on), with a DICOMweb route to call with the token."""
    app = make_test_app(tmp_path, f"sqlite:///{tmp_path / 'e2e.sqlite'}",
                        WTF_CSRF_ENABLED=True, TESTING=False)
    add_probe(app)
    return app


def _get(url: str, secret: str) -> tuple[int, dict, dict]:
    request = urllib.request.Request(  # noqa: S310 - the loopback test server
        url, headers={"Authorization": f"Bearer {secret}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - loopback
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


def test_create_see_once_use_and_revoke_a_token(page: Page, live_server):
    with live_server.app.app_context():
        user = make_user(full_name="Rosalind Franklin")
        db.session.commit()
        email, user_id = user.email, user.id
        db.session.remove()
    base = live_server.url
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    sign_in(page, base, email)
    page.goto(f"{base}/account")
    expect(page.locator("#api-tokens")).to_contain_text("You have no API tokens.")
    page.fill("#label", "Lab PACS")
    page.check("#new-token input[value=write]")
    page.select_option("#expires", "30")
    page.fill("#new-token #password", DEFAULT_PASSWORD)
    page.click("#new-token button[type=submit]")

    expect(page.locator("h1")).to_have_text("New API token")
    secret = page.locator("#api-token").inner_text().strip()
    assert secret.startswith("qap_") and len(secret) == 47
    page.click("#copy-token")
    expect(page.locator("#copy-done")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    expect(page.locator("pre.usage")).to_contain_text(f"{base}/dicomweb")

    status, body, headers = _get(base + PROBE, secret)
    assert status == 200 and body["user"] == user_id
    assert "Set-Cookie" not in headers

    # Back on the account page: the token is listed by its prefix, never shown again.
    page.goto(f"{base}/account")
    row = page.locator("#api-tokens tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Lab PACS")
    expect(row).to_contain_text(secret[:12] + "…")
    expect(row).to_contain_text("read write")
    expect(row).to_contain_text("active")
    assert secret not in page.content()

    page.on("dialog", lambda dialog: dialog.accept())
    row.locator("button", has_text="Revoke").click()
    expect(page.locator(".flash-success")).to_contain_text("is revoked")
    expect(page.locator("#api-tokens tbody tr")).to_contain_text("revoked")

    status, body, headers = _get(base + PROBE, secret)
    assert status == 401 and body == {"error": "invalid or expired API token"}
    assert headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
