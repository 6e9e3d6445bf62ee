"""Steps of the OHIF marks browser tests: draw a length with the mouse in OHIF's viewport and
save it through OHIF's own measurement panel ("Create SR" → report name → Save), which
STOWs a DICOM SR (TID 1500) to the portal's /dicomweb/studies."""

from __future__ import annotations

import re

from playwright.sync_api import Page, Response, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.e2e.ohif_world import wait_for_image

LENGTH = re.compile(r"(\d+(?:\.\d+)?) mm")
# Cornerstone draws a measurement's text with setAttribute("style", ...) (user-select,
# drop shadow) on an SVG <text>: the viewer's CSP has no 'unsafe-inline' for style
# attributes, so the browser reports this and draws the text without its shadow.
ACCEPTED_CSP = re.compile(r"^style-src-attr inline *$")


def csp_violations(page: Page) -> list[str]:
    """The page's CSP violations but the accepted one (see ACCEPTED_CSP)."""
    return [v for v in page.evaluate("window.__csp") if not ACCEPTED_CSP.match(v)]


def dismiss_tour(page: Page) -> None:
    """OHIF's onboarding tour opens over the viewport in a fresh browser profile."""
    skip = page.get_by_text("Skip all", exact=True)
    try:
        skip.wait_for(state="visible", timeout=10_000)
    except PlaywrightTimeout:
        return  # no tour shown
    skip.click()
    expect(skip).to_be_hidden()


def draw_length(page: Page) -> float:
    """Select the Length tool and drag a line across the image; accept OHIF's offer to
    track the series' measurements. Return the length OHIF shows, in mm."""
    wait_for_image(page)
    dismiss_tour(page)
    page.locator("[data-cy=Length-btn]").click()
    box = page.locator("canvas.cornerstone-canvas").first.bounding_box()
    x0, y0 = box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.5
    page.mouse.move(x0, y0)
    page.mouse.down()
    for k in range(1, 11):  # a drag in steps, as a hand moves
        page.mouse.move(x0 + 20 * k, y0 + 5 * k)
    page.mouse.up()
    prompt = page.get_by_text("Track measurements for this series?")
    expect(prompt).to_be_visible()
    page.get_by_role("button", name="Yes", exact=True).click()
    expect(prompt).to_be_hidden()
    page.locator("[data-cy=trackedMeasurements-btn]").click()
    panel_row = page.get_by_text(LENGTH).last
    expect(panel_row).to_be_visible()
    expect(page.get_by_text("Measurements (1)")).to_be_visible()
    return float(LENGTH.search(panel_row.inner_text()).group(1))


def save_report(page: Page, name: str) -> Response:
    """Save the tracked measurements as an SR through OHIF's panel; return the STOW-RS
    answer (after OHIF says it saved)."""
    page.get_by_role("button", name="Create SR").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Create Report")).to_be_visible()
    dialog.locator("[data-cy=dialog-input]").fill(name)
    with page.expect_response(lambda r: r.request.method == "POST"
                              and r.url.endswith("/dicomweb/studies")) as stowed:
        dialog.locator("[data-cy=input-dialog-save-button] button").click()
    response = stowed.value
    expect(page.get_by_text("Measurements saved successfully")).to_be_visible()
    return response
