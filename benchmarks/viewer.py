"""OHIF against the built-in viewer on a generated CT (500 slices by default) in Chromium.

For each viewer: time from navigation to the first image drawn (pixels that are not a blank
or uniform frame), then scroll the whole series with the keyboard (one slice per ArrowDown,
as a reader would) and report whether any step showed a blank frame, and how long it took.
The portal serves from this process (a threaded WSGI server, as the browser tests), with
the fetched OHIF build (`make ohif`); Chromium draws OHIF with software WebGL2.
Run from the repository root: `python benchmarks/viewer.py [--slices 500]`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from qaportal import create_app  # noqa: E402
from qaportal.dicom import generate_ct_series  # noqa: E402
from qaportal.extensions import db  # noqa: E402
from qaportal.models import Study  # noqa: E402
from qaportal.ohif import fetch  # noqa: E402
from qaportal.studies import jobs  # noqa: E402
from tests.e2e.conftest import CHROMIUM  # noqa: E402
from tests.e2e.ohif_world import CANVAS_PIXELS, WEBGL_ARGS  # noqa: E402
from tests.factories import DEFAULT_PASSWORD, make_user  # noqa: E402
from tests.live import LiveServer  # noqa: E402

EMAIL = "viewer-bench@example.test"
# The built-in viewer's current frame, read the same way (a same-origin PNG).
IMG_PIXELS = """() => {
  const img = document.getElementById('viewer-image');
  if (!img || !img.complete || !img.naturalWidth) { return null; }
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  let n = 0, sum = 0, sq = 0;
  for (let i = 0; i < d.length; i += 4 * 7) { const g = d[i]; n++; sum += g; sq += g * g; }
  const mean = sum / n;
  return [Math.sqrt(Math.max(0, sq / n - mean * mean)), img.getAttribute('data-loaded')];
}"""


# A cheap fingerprint of the drawn canvas: it changes when another slice is shown.
SIGNATURE = """(sel) => {
  const c = document.querySelector(sel); const ctx = c && c.getContext('2d');
  if (!ctx) { return null; }
  const d = ctx.getImageData(0, 0, c.width, c.height).data; let h = 0;
  for (let i = 0; i < d.length; i += 4 * 13) { h = (h * 31 + d[i]) | 0; }
  return h;
}"""


def seed(root: Path, slices: int):
    app = create_app({"INSTANCE_PATH": str(root / "instance"), "SECRET_KEY": "bench-viewer",
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{root / 'bench.sqlite'}",
                      "LOCAL": True, "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 8,
                      "ARGON2_PARALLELISM": 1})
    with app.app_context():
        db.create_all()
        user = make_user(roles=("radiologist",), email=EMAIL)
        db.session.commit()
        generate_ct_series(root / "ct", slices=slices, patient=("BENCH^VIEWER", "BENCHVW1"))
        run = jobs.import_files([root / "ct"], user.id, jobs.new_batch(user, "cli").id)
        assert run.stored == slices, run.errors
        study = db.session.scalars(sa.select(Study)).one()
        return app, study.id, study.study_uid


def sign_in(page, base: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#email", EMAIL)
    page.fill("#password", DEFAULT_PASSWORD)
    page.click("button[type=submit]")
    page.locator(".whoami").wait_for()


def poll(fn, timeout: float = 120.0, every: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(every)
    return None


def builtin(page, base: str, study_id: int, slices: int) -> dict:
    t0 = time.monotonic()
    page.goto(f"{base}/studies/{study_id}/viewer")
    first = poll(lambda: (s := page.evaluate(IMG_PIXELS)) and s[0] > 1 and s)
    ttfi = time.monotonic() - t0
    page.locator("#stage").hover()
    blank, moved, t1, last = 0, 0, time.monotonic(), first[1] if first else None
    for _ in range(slices - 1):
        page.keyboard.press("ArrowDown")
        before = last
        shown = poll(lambda before=before: (s := page.evaluate(IMG_PIXELS)) and s[1] != before
                     and s, 10)
        if not shown or shown[0] <= 1:
            blank += 1
        if shown:
            moved, last = moved + 1, shown[1]
    return {"first": ttfi if first else None, "blank": blank, "moved": moved,
            "scroll": time.monotonic() - t1}


def ohif(page, base: str, uid: str, slices: int) -> dict:
    sel = "canvas.cornerstone-canvas"
    t0 = time.monotonic()
    page.goto(f"{base}/viewer/ohif/viewer?StudyInstanceUIDs={uid}")
    first = poll(lambda: (s := page.evaluate(CANVAS_PIXELS, sel)) and s[0] > 10 and s, 180)
    ttfi = time.monotonic() - t0
    box = page.locator(sel).first.bounding_box()  # focus the viewport (overlays cover it)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    blank, moved, t1 = 0, 0, time.monotonic()
    last = page.evaluate(SIGNATURE, sel)
    for _ in range(slices - 1):
        page.keyboard.press("ArrowDown")
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => "
                      "requestAnimationFrame(r)))")
        stats = page.evaluate(CANVAS_PIXELS, sel)
        if not stats or stats[0] <= 1:
            blank += 1
        now = page.evaluate(SIGNATURE, sel)
        moved, last = moved + (now != last), now
    return {"first": ttfi if first else None, "blank": blank, "moved": moved,
            "scroll": time.monotonic() - t1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=500)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        fetch.fetch(fetch.DEFAULT_DEST)
    except fetch.FetchError as exc:
        print(f"OHIF not available, measuring nothing: {exc}")
        return
    with tempfile.TemporaryDirectory(prefix="viewer-bench-") as tmp:
        app, study_id, uid = seed(Path(tmp), args.slices)
        server = LiveServer(app).start()
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=WEBGL_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                sign_in(page, server.url)
                results = {"built-in": builtin(page, server.url, study_id, args.slices),
                           "OHIF": ohif(page, server.url, uid, args.slices)}
                browser.close()
        finally:
            server.stop()
    print(f"{args.slices}-slice CT, Chromium (software WebGL2 for OHIF)")
    for name, r in results.items():
        first = f"{r['first']:.2f} s" if r["first"] is not None else "no image"
        print(f"  {name:9} first image {first:>9}   scrolled {args.slices - 1} slices in "
              f"{r['scroll']:.1f} s ({r['moved']} steps showed another frame)   "
              f"blank frames seen: {r['blank']}")


if __name__ == "__main__":
    main()
