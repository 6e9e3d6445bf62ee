"""The render process: read a JSON request on stdin, write a header line and the PDF.

Run as `python -m qaportal.pdf.worker` by render.py; never imports Flask or the database.
"""

from __future__ import annotations

import json
import resource
import sys
from typing import Any

# The base URL of report HTML: root-relative links (/static/...) reach the fetcher as
# they are, since urljoin leaves URLs of an unknown scheme alone.
BASE_URL = "qaportal-asset:/"


def render(html: str, options: dict[str, Any]) -> tuple[bytes, int, list[str]]:
    """Render in this process; return the PDF bytes, its page count and refused URLs."""
    from weasyprint import CSS, HTML
    from weasyprint.text.fonts import FontConfiguration

    from qaportal.pdf.fetcher import AssetFetcher

    fetcher = AssetFetcher()
    fonts = FontConfiguration()
    css = f"@page {{ size: {options['page_size']}; }}\n{options.get('extra_css', '')}"
    stylesheets = [CSS(string=css, font_config=fonts, url_fetcher=fetcher)]
    pdf_options = {
        "pdf_variant": options["variant"],
        "custom_metadata": True,
        "pdf_identifier": (options.get("identifier") or "").encode("ascii") or None,
    }
    document = HTML(string=html, base_url=BASE_URL, url_fetcher=fetcher).render(
        font_config=fonts, stylesheets=stylesheets, **pdf_options
    )
    data = document.write_pdf(**pdf_options)
    return data, len(document.pages), fetcher.refused


def main() -> int:
    """Serve one render request from stdin to stdout."""
    # WeasyPrint first: a process started ahead of its request (render.Renderer) loads it
    # while the report is being gathered.
    import weasyprint  # noqa: F401

    request = json.loads(sys.stdin.buffer.read())
    options = request["options"]
    limit = int(options.get("memory_mb") or 0)
    if limit > 0:
        resource.setrlimit(resource.RLIMIT_AS, (limit * 1024 * 1024,) * 2)
    out = sys.stdout.buffer
    try:
        data, pages, refused = render(request["html"], options)
    except MemoryError:
        out.write(json.dumps({"ok": False, "error": "the document needs more memory "
                              "than allowed"}).encode() + b"\n")
        return 1
    except Exception as exc:  # every failure goes back to the parent as a message
        message = f"{type(exc).__name__}: {exc}"[:500]
        out.write(json.dumps({"ok": False, "error": message}).encode() + b"\n")
        return 1
    header = {"ok": True, "pages": pages, "size": len(data), "refused": refused}
    out.write(json.dumps(header).encode() + b"\n")
    out.write(data)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
