"""The OHIF browser tests' world: the fetched viewer, a WebGL-capable Chromium, a real study.

The study is a generated CT series (from pydicom's CT_small) carrying sentinel identifiers,
ingested through the import job; the test then reads what OHIF draws on its canvas.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from qaportal.ohif import fetch
from tests.dicomweb_helpers import ingest
from tests.e2e.conftest import CHROMIUM
from tests.studyfiles import sample

PATIENT = ("OHIFPAT^QUIXSENTINEL", "OHIFPID0042")
INSTITUTION = "Zanzibar Sentinel Infirmary"
SLICES = 6
# The page composited in software, as Chromium does without a GPU. Without this flag the
# forced SwiftShader GL below composites every frame of the page too, which kept one of this
# machine's two cores ~70 % busy while OHIF loaded (docs/viewer-ohif.md).
SOFTWARE_COMPOSITING = "--disable-gpu-compositing"
# WebGL2 without a GPU: SwiftShader (Chromium's software GL), as a browser without GPU has.
WEBGL_ARGS = ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
              "--ignore-gpu-blocklist", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run",
              "--disable-quic", SOFTWARE_COMPOSITING]


def fetched_build() -> Path:
    """The pinned OHIF build (fetched now if `make ohif` has not run); skip when it cannot
    be fetched (no network to the npm registry)."""
    try:
        fetch.fetch(fetch.DEFAULT_DEST)
    except fetch.FetchError as exc:
        pytest.skip(f"OHIF viewer could not be fetched from the npm registry (no network?): {exc}")
    return fetch.DEFAULT_DEST / "dist"


def webgl_browser(playwright):
    """A Chromium with software WebGL2 (OHIF draws with WebGL); skip when it has none."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=WEBGL_ARGS)
    page = browser.new_page()
    has_webgl2 = page.evaluate("() => !!document.createElement('canvas').getContext('webgl2')")
    page.close()
    if not has_webgl2:
        browser.close()
        pytest.skip("this Chromium has no WebGL2, even software (SwiftShader)")
    return browser


# Records the page's CSP violations (an init script runs before the page's CSP applies).
RECORD_CSP = """window.__csp = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__csp.push(e.effectiveDirective + ' ' + (e.blockedURI || '') + ' ' + (e.sample || ''));
});"""


def sentinel_study(owner, folder: Path, slices: int = SLICES):
    """Ingest a generated CT series with the sentinel patient and institution."""
    from qaportal.dicom import generate_ct_series

    paths = generate_ct_series(folder, slices=slices, base=str(sample("CT_small.dcm")),
                               patient=PATIENT, series_description="OHIF AXIAL")
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.InstitutionName = INSTITUTION
        ds.save_as(p)
    return ingest(owner, list(paths))


def original_identifiers(study) -> list[str]:
    """Every value a blind reviewer must never receive: UIDs, patient, institution."""
    values = [study.study_uid, PATIENT[0], PATIENT[0].replace("^", " "), PATIENT[1],
              INSTITUTION, "QUIXSENTINEL"]
    for series in study.series:
        values.append(series.series_uid)
        values.extend(i.sop_uid for i in series.instances)
    return values


# The viewport's pixels as drawn (Cornerstone copies each rendered frame onto this 2D
# canvas; the overlays are DOM elements above it, so they do not count).
CANVAS_PIXELS = """(sel) => {
  const c = document.querySelector(sel);
  if (!c || !c.width || !c.height) { return null; }
  const ctx = c.getContext('2d');
  if (!ctx) { return null; }
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  let n = 0, sum = 0, sq = 0; const levels = new Set();
  for (let i = 0; i < d.length; i += 4 * 7) {
    const g = (d[i] + d[i + 1] + d[i + 2]) / 3; n++; sum += g; sq += g * g; levels.add(g | 0);
  }
  const mean = sum / n;
  return [Math.sqrt(Math.max(0, sq / n - mean * mean)), levels.size];
}"""


def canvas_stats(page, selector: str = "canvas.cornerstone-canvas") -> tuple[float, int]:
    """Return (standard deviation, distinct grey levels) of the viewport canvas's pixels."""
    stats = page.evaluate(CANVAS_PIXELS, selector)
    if stats is None:
        raise AssertionError(f"no readable 2D canvas {selector}")
    return float(stats[0]), int(stats[1])


def wait_for_image(page, timeout_s: float = 60.0) -> tuple[float, int]:
    """Wait until OHIF's canvas shows an image (not a blank or uniform frame)."""
    import time

    page.locator("canvas.cornerstone-canvas").first.wait_for(timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    stats = (0.0, 0)
    while time.monotonic() < deadline:
        stats = canvas_stats(page)
        if stats[0] > 10 and stats[1] > 20:
            return stats
        page.wait_for_timeout(500)
    raise AssertionError(f"OHIF drew no image within {timeout_s}s (canvas std/levels {stats})")
