"""The unpacked OHIF build on disk: where it is, and its index.html made to run here.

The build's index.html assumes it is served at "/" and carries two inline scripts; the
portal serves it under /viewer/ohif/ with a CSP allowing no inline script. So, once per
process (again when the file changes): absolute "/" links get the prefix; the inline
scripts go (app-config.js sets window.PUBLIC_URL and browserImportFunction instead); the
service-worker bootstrap goes (it loads Workbox from a CDN and would cache patient data);
a <meta> slot takes the page's CSRF token; the chunks OHIF needs for its first image are
announced as preloads at the end of the head (qaportal/ohif/preload.py).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from flask import current_app

from qaportal import PACKAGE_DIR, SOURCE_TREE
from qaportal.ohif import preload

# Files of the build never served: replaced (app-config.js), service workers, the Google
# Cloud config sample, host-specific rewrite files.
HIDDEN = frozenset({"app-config.js", "sw.js", "init-service-worker.js", "google.js",
                    "serve.json", "_redirects", "_headers", "index.html"})
META_SLOT = "<!--qaportal-meta-->"

_lock = threading.Lock()
_cache: dict[str, tuple[float, str]] = {}


class BuildError(Exception):
    """The unpacked build is missing or not the one this code knows how to serve."""


def dist_dir() -> Path:
    """The unpacked build's dist/ folder (OHIF_DIR from the config, else vendor/ohif)."""
    configured = current_app.config.get("OHIF_DIR")
    if configured:
        root = Path(configured)
    elif SOURCE_TREE:
        root = PACKAGE_DIR.parent / "vendor" / "ohif"
    else:
        root = Path(current_app.instance_path) / "ohif"
    return root / "dist"


def available() -> bool:
    return (dist_dir() / "index.html").is_file()


def rewrite_index(html: str, base: str, config_url: str, preloads: str = "") -> str:
    """Return the build's index.html made to run under base (e.g. "/viewer/ohif/"), with
    the preload links (preload.links) at the end of its head (after the app's script
    and stylesheet)."""
    inline = re.compile(r"<script>[^<]*</script>")
    if len(inline.findall(html)) != 2 or "window.PUBLIC_URL" not in html:
        raise BuildError("index.html is not the shape this portal rewrites (two inline "
                         "scripts setting window.PUBLIC_URL); review qaportal/ohif/assets.py "
                         "before bumping the OHIF version")
    html = inline.sub("", html)
    html = re.sub(r'<script[^>]*src="/init-service-worker\.js"[^>]*></script>', "", html)
    html = re.sub(r'(href|src)="/(?!/)', rf'\1="{base}', html)
    html = html.replace(f'src="{base}app-config.js"', f'src="{config_url}"')
    html = html.replace("<head>", "<head>" + META_SLOT, 1)
    if preloads:
        if "</head>" not in html:
            raise BuildError("index.html: no </head>")
        html = html.replace("</head>", preloads + "</head>", 1)
        html = re.sub(r'<script defer (src="[^"]*/app\.bundle\.[^"]*")>',
                      r'<script defer fetchpriority="high" \1>', html)
    if config_url not in html or "<script" not in html:
        raise BuildError("index.html: app-config.js reference not found")
    return html


def index_template(base: str, config_url: str) -> str:
    """The rewritten index.html (cached per process while the file is unchanged)."""
    path = dist_dir() / "index.html"
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError as exc:
        raise BuildError("the OHIF viewer is not installed (run `make ohif`)") from exc
    key = f"{path}|{base}|{config_url}"
    with _lock:
        hit = _cache.get(key)
        if hit and hit[0] == mtime:
            return hit[1]
    html = rewrite_index(path.read_text(encoding="utf-8"), base, config_url,
                         preload.links(path.parent, base))
    with _lock:
        _cache[key] = (mtime, html)
    return html
