"""Render HTML to an archival PDF in a child process, with a time and memory limit.

WeasyPrint cannot be interrupted from another thread, so each render runs in a fresh
`python -m qaportal.pdf.worker` process that is killed when the time is up. A plain
subprocess (rather than fork) keeps the render away from the server's threads, open
database connections and secrets: it gets a minimal environment and only the HTML.
A Renderer starts that process ahead of the HTML, so that WeasyPrint loads while the
report is gathered (qaportal.reports.service.create_export).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess  # noqa: S404 - runs our own worker module with a fixed argv
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PAGE_SIZES = {"letter": "letter", "a4": "A4"}
PDF_VARIANTS = ("pdf/a-2b", "pdf/a-3b", "pdf/a-2u", "pdf/a-3u")
# The render process inherits only these variables (no secrets, no database URL).
_ENV_KEEP = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "FONTCONFIG_FILE", "FONTCONFIG_PATH",
             "XDG_CACHE_HOME", "XDG_DATA_DIRS")
_IMPORT_ROOT = str(Path(__file__).resolve().parents[2])
# Renders at once per server process: each takes a core while it runs.
MAX_CONCURRENT = 2
_slots = threading.BoundedSemaphore(MAX_CONCURRENT)


class PdfError(RuntimeError):
    """The PDF could not be made; the message says why, for people."""


class PdfTimeout(PdfError):
    """The render took longer than allowed and was stopped."""


@dataclass(frozen=True)
class RenderOptions:
    """How to render: limits, paper, archival variant and the document identifier."""

    timeout: float = 60.0
    page_size: str = "letter"
    variant: str = "pdf/a-2b"
    memory_mb: int = 2048  # address-space cap of the render process; 0: none
    identifier: str | None = None  # written as the PDF file identifier (trailer /ID)
    extra_css: str = ""


@dataclass(frozen=True)
class RenderedPdf:
    """A finished PDF and facts about it."""

    data: bytes
    page_count: int
    seconds: float
    refused_urls: list[str] = field(default_factory=list)


class Renderer:
    """A render process started ahead of its HTML: it loads WeasyPrint (about a second)
    while the caller gathers the report, and renders the first render_pdf given it.
    Use as a context manager: leaving it stops the process if it was not used."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = _spawn()

    def take(self) -> subprocess.Popen | None:
        proc, self._proc = self._proc, None
        return proc

    def close(self) -> None:
        proc = self.take()
        if proc is not None:
            proc.kill()
            proc.communicate()

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def render_pdf(html: str, options: RenderOptions | None = None,
               renderer: Renderer | None = None) -> RenderedPdf:
    """Render an HTML string to PDF bytes, or raise PdfError / PdfTimeout (in the process
    renderer started, when given one)."""
    options = options or RenderOptions()
    if options.page_size.lower() not in PAGE_SIZES:
        raise PdfError(f"unknown page size {options.page_size!r}")
    if options.variant not in PDF_VARIANTS:
        raise PdfError(f"unsupported PDF variant {options.variant!r}")
    request = json.dumps({"html": html, "options": _as_dict(options)}).encode("utf-8")
    started = time.monotonic()
    if not _slots.acquire(timeout=options.timeout):
        raise PdfTimeout("the PDF renderer is busy with other reports; try again shortly")
    try:
        proc = renderer.take() if renderer is not None else None
        return _run(request, options, started, proc or _spawn())
    finally:
        _slots.release()


def _spawn() -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603 - fixed argv, our own module
        [sys.executable, "-m", "qaportal.pdf.worker"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=_child_env(), close_fds=True,
    )


def _run(request: bytes, options: RenderOptions, started: float,
         proc: subprocess.Popen) -> RenderedPdf:
    try:
        remaining = max(0.01, options.timeout - (time.monotonic() - started))
        out, err = proc.communicate(request, timeout=remaining)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise PdfTimeout(
            f"the report took longer than {options.timeout:g} s to render and was stopped; "
            "choose a shorter period or fewer items"
        ) from None
    header, _, data = out.partition(b"\n")
    try:
        result = json.loads(header)
    except ValueError:
        log.error("PDF worker exited %s: %s", proc.returncode, err[-2000:].decode(errors="replace"))
        raise PdfError(
            f"the PDF renderer stopped unexpectedly (exit code {proc.returncode}); "
            "the document may be too large"
        ) from None
    if not result.get("ok"):
        raise PdfError(f"the PDF could not be rendered: {result.get('error')}")
    if len(data) != result["size"]:
        raise PdfError("the PDF renderer returned a truncated document")
    return RenderedPdf(data, result["pages"], time.monotonic() - started, result["refused"])


def _child_env() -> dict[str, str]:
    env = {k: os.environ[k] for k in _ENV_KEEP if k in os.environ}
    env["PYTHONPATH"] = _IMPORT_ROOT
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _as_dict(options: RenderOptions) -> dict[str, Any]:
    return {
        "page_size": PAGE_SIZES[options.page_size.lower()],
        "variant": options.variant,
        "memory_mb": options.memory_mb,
        "identifier": options.identifier,
        "extra_css": options.extra_css,
    }
