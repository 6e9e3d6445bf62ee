"""When each phase of an OHIF open ends, from the browser's own clocks (benchmarks/viewer.py
--trace).

The page's Resource Timing entries (start and end of every request, in ms since the
navigation started) are read once the first image is drawn; "first pixels" is the page's
clock when the benchmark saw the image. Chrome's Performance metrics (CDP) add the time its
main thread spent running script and in tasks up to then: on a 2-core machine that CPU
time, not the network, is most of a first open.
"""

from __future__ import annotations

import re

# Resource Timing keeps 250 entries by default: OHIF's open makes more.
INIT = "performance.setResourceTimingBufferSize(5000);"

ENTRIES = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const out = [['html', nav.startTime, nav.responseEnd, nav.transferSize, nav.responseStatus]];
  for (const e of performance.getEntriesByType('resource')) {
    out.push([new URL(e.name).pathname + new URL(e.name).search, e.startTime, e.responseEnd,
              e.transferSize, e.responseStatus]);
  }
  return out;
}"""

# (phase, pattern on the path): the first matching request of each, in this order.
PHASES = (
    ("app-config.js", re.compile(r"/app-config\.js$")),
    ("app bundle", re.compile(r"/app\.bundle\.[0-9a-f]+\.js$")),
    ("QIDO studies", re.compile(r"/dicomweb/studies\?")),
    ("QIDO series", re.compile(r"/dicomweb/studies/[^/]+/series(\?|$)")),
    ("series metadata", re.compile(r"/series/[^/]+/metadata$")),
    ("first frame", re.compile(r"/frames/")),
)
CHUNK = re.compile(r"/(?!app\.)[^/]+\.bundle\.[0-9a-f]+\.js$")

# Merges an override into window.config (its "dataSource" key into the one data source's
# configuration), for A/B runs of OHIF's settings without editing qaportal/ohif/config.py.
MERGE = """;(function (o) {
  function merge(a, b) {
    Object.keys(b).forEach(function (k) {
      if (b[k] && typeof b[k] === 'object' && !Array.isArray(b[k]) && a[k]) { merge(a[k], b[k]); }
      else { a[k] = b[k]; }
    });
  }
  var ds = o.dataSource; delete o.dataSource;
  merge(window.config, o);
  if (ds) { merge(window.config.dataSources[0].configuration, ds); }
})(%s);"""


def override_config(context, override: str) -> None:
    """Serve app-config.js with override (a JSON object) merged into window.config.

    Playwright's routing turns the context's HTTP cache off: under an override no open
    reads the build from the browser's cache (no warm or hot open), so compare an override
    only with `--override '{}'`."""
    def handle(route):
        response = route.fetch()
        route.fulfill(response=response, body=response.text() + MERGE % override)

    context.route("**/viewer/ohif/app-config.js", handle)


class Trace:
    """Start before page.goto, call done() when the first image is seen."""

    def __init__(self, context, page):
        self.page = page
        self.cdp = context.new_cdp_session(page)
        self.cdp.send("Performance.enable")
        self.start = self._metrics()

    def _metrics(self) -> dict:
        return {m["name"]: m["value"]
                for m in self.cdp.send("Performance.getMetrics")["metrics"]}

    def done(self) -> dict:
        shown = self.page.evaluate("() => performance.now()")
        now = self._metrics()
        metrics = {name: value - self.start.get(name, 0) for name, value in now.items()}
        entries = self.page.evaluate(ENTRIES)
        self.cdp.detach()
        return {"shown": shown, "entries": entries, "metrics": metrics}


def report(trace: dict) -> list[str]:
    """Lines: each phase's start and end (ms after navigation), then counts and CPU."""
    entries = trace["entries"]
    lines = []

    def line(name: str, start: float, end: float, note: str = "") -> None:
        lines.append(f"    {name:22} {start:7.0f} -> {end:7.0f} ms  {note}")

    html = entries[0]
    line("html", html[1], html[2])
    before = [e for e in entries[1:] if e[1] <= trace["shown"]]
    for name, pattern in PHASES:
        hits = [e for e in before if pattern.search(e[0])]
        if hits:
            first = hits[0]
            note = f"({len(hits)} requests)" if len(hits) > 1 else ""
            line(name, first[1], first[2], note)
            if name == "app bundle":
                chunks = [e for e in before if CHUNK.search(e[0])]
                if chunks:
                    line("chunks (last done)", min(e[1] for e in chunks),
                         max(e[2] for e in chunks), f"({len(chunks)} chunks)")
    frames = [e for e in before if "/frames/" in e[0]]
    thumbs = [e for e in before if "/thumbnail" in e[0] or "/rendered" in e[0]]
    line("first pixels", 0, trace["shown"],
         f"({len(before)} requests before, {len(frames)} frames, {len(thumbs)} rendered; "
         f"{sum(e[3] for e in before) / 1e6:.1f} MB over the wire)")
    m = trace["metrics"]
    lines.append(f"    main thread: script {m.get('ScriptDuration', 0) * 1000:.0f} ms, "
                 f"tasks {m.get('TaskDuration', 0) * 1000:.0f} ms, "
                 f"layout {m.get('LayoutDuration', 0) * 1000:.0f} ms")
    frame_end = min((e[2] for e in frames), default=None)
    if frame_end is not None:  # what else the page loaded between the first frame and pixels
        late = [e for e in before if e[2] > frame_end and "/frames/" not in e[0]]
        names = ", ".join(re.sub(r"[0-9.]{20,}", "<uid>", e[0].rsplit("/", 1)[-1])[:40]
                          for e in late)
        lines.append(f"    after the first frame: {names or 'nothing'}")
    dicomweb = [e for e in before if "/dicomweb/" in e[0] and "/frames/" not in e[0]]
    for e in dicomweb:
        path = re.sub(r"[0-9.]{20,}", "<uid>", e[0])[:90]
        lines.append(f"      dicomweb {e[1]:7.0f} -> {e[2]:7.0f} ms  {e[4]} {path}")
    return lines
