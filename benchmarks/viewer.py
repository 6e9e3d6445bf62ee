"""OHIF against the built-in viewer on a generated CT (500 slices by default) in Chromium.

For each viewer: time from navigation to the first image drawn (pixels that are not a blank
or uniform frame), then scroll the whole series with the keyboard (one slice per ArrowDown,
as a reader would) and report whether any step showed a blank frame, and how long it took.
The portal is served by gunicorn (sync workers, as `make run`), with the fetched OHIF build
(`make ohif`). OHIF is opened once in a throw-away browser (the server compresses the
build's files on these first requests, once: "server cold"), then three times in a new
on-disk browser profile, each in a new tab: "OHIF" (empty HTTP and code caches: a reader's
first open ever), "browser warm" (files from the browser's cache) and "browser hot"
(Chromium compiles a script from its V8 code cache from its third load on: a reader who
opens the viewer every day). The profile is a real one (launch_persistent_context): a
Playwright browser.new_context() is off the record, and Chromium keeps no code cache there.
`--rounds N` repeats the three opens in N new profiles and shows medians. Chromium draws
WebGL2 with SwiftShader and composites the page in software (`--disable-gpu-compositing`),
as the browser tests do; `--gpu-compositing` sends the compositing through SwiftShader too.
The study is imported through the import job, which caches its DICOMweb metadata: "server
cold" is thus the first open of a newly imported study as in real use.
Run from the repository root:
`python benchmarks/viewer.py [--slices 500] [--rounds N] [--no-scroll] [--trace]
[--gpu-compositing] [--override JSON]` (--trace: when each phase of each OHIF open ended,
viewer_trace.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

import sqlalchemy as sa  # noqa: E402
from ingest import gunicorn  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402
from viewer_trace import INIT, Trace, override_config, report  # noqa: E402

from qaportal import create_app  # noqa: E402
from qaportal.dicom import generate_ct_series  # noqa: E402
from qaportal.extensions import db  # noqa: E402
from qaportal.jobs import tasks  # noqa: E402
from qaportal.models import Study  # noqa: E402
from qaportal.ohif import fetch  # noqa: E402
from qaportal.studies import jobs  # noqa: E402
from tests.e2e.conftest import CHROMIUM  # noqa: E402
from tests.e2e.ohif_world import CANVAS_PIXELS, SOFTWARE_COMPOSITING, WEBGL_ARGS  # noqa: E402
from tests.factories import DEFAULT_PASSWORD, make_user  # noqa: E402

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


def bench_config(root: Path) -> dict:
    return {"INSTANCE_PATH": str(root / "instance"), "SECRET_KEY": "bench-viewer",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{root / 'bench.sqlite'}",
            "LOCAL": True, "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 8,
            "ARGON2_PARALLELISM": 1}


def seed(root: Path, slices: int):
    app = create_app(bench_config(root))
    with app.app_context():
        db.create_all()
        user = make_user(roles=("radiologist",), email=EMAIL)
        db.session.commit()
        generate_ct_series(root / "ct", slices=slices, patient=("BENCH^VIEWER", "BENCHVW1"))
        run = jobs.import_files([root / "ct"], user.id, jobs.new_batch(user, "cli").id)
        assert run.stored == slices, run.errors
        study = db.session.scalars(sa.select(Study)).one()
        # The import queued the caching of the study's DICOMweb metadata; run it as the
        # worker of `make run` would, before anyone opens the study.
        tasks.warm_metadata(study.id, user.id)
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


def ohif(page, base: str, uid: str, slices: int, scroll: bool = True,
         trace: Trace | None = None) -> dict:
    sel = "canvas.cornerstone-canvas"
    t0 = time.monotonic()
    page.goto(f"{base}/viewer/ohif/viewer?StudyInstanceUIDs={uid}")
    first = poll(lambda: (s := page.evaluate(CANVAS_PIXELS, sel)) and s[0] > 10 and s, 180)
    ttfi = time.monotonic() - t0
    timeline = trace.done() if trace is not None and first else None
    if not scroll:
        return {"first": ttfi if first else None, "blank": 0, "moved": 0, "scroll": None,
                "trace": timeline}
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
            "scroll": time.monotonic() - t1, "trace": timeline}


OPENS = (("OHIF", True), ("OHIF browser warm", False), ("OHIF browser hot", False))


def open_in_profile(pw, flags: list[str], base: str, uid: str, slices: int, args,
                    scroll: bool, study_id: int, results: dict) -> None:
    """The fresh, warm and hot opens in one new on-disk browser profile (and the built-in
    viewer after them when scrolling). A Playwright context of browser.new_context() is
    off the record: Chromium keeps no V8 code cache there, so it cannot show a hot open."""
    with tempfile.TemporaryDirectory(prefix="viewer-bench-profile-") as profile:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=flags,
            viewport={"width": 1280, "height": 900})
        context.add_init_script(INIT)
        if args.override:
            override_config(context, json.dumps(json.loads(args.override)))
        page = context.new_page()
        sign_in(page, base)
        for name, scrolls in OPENS:
            page.close()  # a new tab each time; the previous one closed (it prefetches)
            page = context.new_page()
            trace = Trace(context, page) if args.trace else None
            results.setdefault(name, []).append(
                ohif(page, base, uid, slices, scroll and scrolls, trace))
        if scroll:
            results["built-in"] = [builtin(page, base, study_id, slices)]
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=500)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1,
                        help="fresh/warm/hot opens in this many new profiles (medians shown)")
    parser.add_argument("--no-scroll", action="store_true",
                        help="first images only: no whole-series scroll, no built-in viewer")
    parser.add_argument("--trace", action="store_true",
                        help="print when each phase of each OHIF open ended (viewer_trace.py)")
    parser.add_argument("--gpu-compositing", action="store_true",
                        help="composite the page through SwiftShader too (the tests' browser "
                             "did until 2026-12-07; see docs/viewer-ohif.md)")
    parser.add_argument("--override", metavar="JSON",
                        help="merge this object into OHIF's window.config (A/B of settings; "
                             'its "dataSource" key into the data source\'s configuration). '
                             "It is served by Playwright's routing, which turns the browser's "
                             "HTTP cache off: compare with --override '{}' only")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        fetch.fetch(fetch.DEFAULT_DEST)
    except fetch.FetchError as exc:
        print(f"OHIF not available, measuring nothing: {exc}")
        return
    flags = [a for a in WEBGL_ARGS if not (args.gpu_compositing and a == SOFTWARE_COMPOSITING)]
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="viewer-bench-") as tmp:
        _app, study_id, uid = seed(Path(tmp), args.slices)
        with gunicorn(Path(tmp), bench_config(Path(tmp)), args.workers) as port:
            base = f"http://127.0.0.1:{port}"
            with sync_playwright() as pw:
                # The server compresses the build's files on its first requests, once.
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=flags)
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                context.add_init_script(INIT)
                if args.override:
                    override_config(context, json.dumps(json.loads(args.override)))
                page = context.new_page()
                sign_in(page, base)
                trace = Trace(context, page) if args.trace else None
                results["OHIF server cold"] = [ohif(page, base, uid, args.slices, False, trace)]
                browser.close()
                for n in range(args.rounds):
                    open_in_profile(pw, flags, base, uid, args.slices, args,
                                    not args.no_scroll and n == 0, study_id, results)
    print(f"{args.slices}-slice CT, Chromium (software WebGL2 for OHIF), gunicorn "
          f"{args.workers} sync workers")
    print("  OHIF = first open in a new browser profile (empty HTTP and code caches); warm = "
          "its second open, hot = its third (compiled from Chromium's code cache: a reader "
          "who opens the viewer every day)")
    if args.override:
        print("  --override: routing turned the browser's HTTP cache off; warm and hot opens "
              "are not cached ones")
    for name, runs in results.items():
        firsts = [r["first"] for r in runs if r["first"] is not None]
        if not firsts:
            first = "no image"
        elif len(runs) == 1:
            first = f"{firsts[0]:.2f} s"
        else:
            first = (f"{statistics.median(firsts):.2f} s (median of {len(firsts)}, "
                     f"{min(firsts):.2f}-{max(firsts):.2f})")
        line = f"  {name:17} first image {first:>9}"
        r = runs[0]
        if r["scroll"] is not None:
            line += (f"   scrolled {args.slices - 1} slices in {r['scroll']:.1f} s "
                     f"({r['moved']} steps showed another frame)   "
                     f"blank frames seen: {r['blank']}")
        print(line)
        if args.trace:
            for n, run in enumerate(runs):
                if run.get("trace"):
                    if len(runs) > 1:
                        print(f"    round {n + 1}:")
                    print("\n".join(report(run["trace"])))


if __name__ == "__main__":
    main()
