"""The PDF renderer: archival output, embedded fonts, no fetching outside our assets, limits."""

from __future__ import annotations

import io
import socket
import threading
import time

import pytest
from pypdf import PdfReader

from qaportal.pdf import (
    AssetFetcher,
    PdfError,
    PdfTimeout,
    RefusedURL,
    Renderer,
    RenderOptions,
    render_pdf,
)
from tests.pdftools import info, pdf_fonts, pdf_text, xmp_text

SIMPLE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Renderer check</title>
<meta name="keywords" content="QAP-TESTTESTTESTTEST">
<link rel="stylesheet" href="/static/css/print.css"></head>
<body><p class="docid">QAP-TESTTESTTESTTEST</p><h2>Heading</h2>
<p>Plain text — “quotes” ✓</p></body></html>"""


class Listener:
    """A TCP port on 127.0.0.1 that counts the connections made to it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


def test_output_is_pdfa_with_embedded_fonts_and_identifier(tmp_path):
    pdf = render_pdf(SIMPLE, RenderOptions(identifier="QAP-TESTTESTTESTTEST"))
    assert pdf.data.startswith(b"%PDF-1.7")
    assert pdf.page_count == 1
    xmp = xmp_text(pdf.data)
    assert 'pdfaid:part="2"' in xmp and 'pdfaid:conformance="B"' in xmp
    assert info(pdf.data)["/Keywords"] == "QAP-TESTTESTTESTTEST"
    trailer_id = PdfReader(io.BytesIO(pdf.data)).trailer["/ID"][0]
    assert str(trailer_id) == "QAP-TESTTESTTESTTEST"
    path = tmp_path / "out.pdf"
    path.write_bytes(pdf.data)
    fonts = pdf_fonts(path)
    assert fonts, "no font in the PDF"
    assert all(f["emb"] == "yes" for f in fonts), fonts
    assert any("DejaVu" in f["name"] for f in fonts), fonts
    assert "“quotes” ✓" in pdf_text(pdf.data)


@pytest.mark.parametrize(("size", "points"), [("letter", (612, 792)), ("A4", (595, 842))])
def test_page_size_is_configurable(size, points):
    pdf = render_pdf(SIMPLE, RenderOptions(page_size=size))
    box = PdfReader(io.BytesIO(pdf.data)).pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == points


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "http://127.0.0.1:9/x", "https://example.org/a.png",
    "ftp://example.org/x", "/static/../__init__.py", "qaportal-asset:../../pyproject.toml",
    "/static/%2e%2e/%2e%2e/pyproject.toml", "file:///work/../etc/passwd", "gopher://x/",
])
def test_fetcher_refuses_urls_outside_the_assets(url):
    with pytest.raises(RefusedURL):
        AssetFetcher().fetch(url)


@pytest.mark.parametrize("url", ["/static/css/print.css", "qaportal-asset:css/print.css",
                                 "data:text/plain,ok"])
def test_fetcher_serves_assets_and_data_urls(url):
    assert AssetFetcher().fetch(url).read()


def test_render_never_fetches_local_files_or_network():
    listener = Listener()
    try:
        target = f"http://127.0.0.1:{listener.port}"
        html = f"""<!doctype html><html><head><title>t</title>
        <link rel="stylesheet" href="{target}/style.css">
        <link rel="attachment" href="file:///etc/passwd" title="passwd">
        <style>@import url("{target}/import.css"); body {{ background: url("{target}/bg.png") }}
        @font-face {{ font-family: X; src: url("file:///etc/passwd") }}</style></head>
        <body><img src="file:///etc/passwd"><img src="{target}/x">
        <svg width="10" height="10"><image href="file:///etc/hostname" width="10"/></svg>
        <p>still rendered</p></body></html>"""
        # PDF/A-3 would keep a non-PDF attachment: only the fetcher stands in the way.
        pdf = render_pdf(html, RenderOptions(variant="pdf/a-3b"))
    finally:
        listener.close()
    assert listener.connections == 0
    assert "still rendered" in pdf_text(pdf.data)
    assert PdfReader(io.BytesIO(pdf.data)).attachments == {}
    assert "file:///etc/passwd" in pdf.refused_urls
    assert f"{target}/x" in pdf.refused_urls


def test_a_renderer_started_ahead_renders_once_and_is_stopped_unused():
    with Renderer() as renderer:
        proc = renderer._proc
        time.sleep(0.2)  # the report would be gathered meanwhile
        pdf = render_pdf(SIMPLE, RenderOptions(identifier="QAP-AHEADAHEADAHEAD"), renderer)
        assert proc.returncode == 0 and renderer.take() is None  # used up
    assert pdf.data.startswith(b"%PDF-") and pdf.page_count == 1
    assert "Heading" in pdf_text(pdf.data)
    with Renderer() as unused:
        proc = unused._proc
        assert proc.poll() is None
    assert proc.returncode is not None  # stopped on leaving, not left running
    with pytest.raises(PdfError), Renderer() as renderer:  # refused settings stop it too
        proc = renderer._proc
        render_pdf(SIMPLE, RenderOptions(page_size="tabloid"), renderer)
    assert proc.returncode is not None


def test_render_is_stopped_at_the_time_limit():
    rows = "".join(f"<tr><td>{i}</td><td>{'word ' * 40}</td></tr>" for i in range(20000))
    html = f"<html><body><table>{rows}</table></body></html>"
    started = time.monotonic()
    with pytest.raises(PdfTimeout, match=r"longer than 0\.5 s"):
        render_pdf(html, RenderOptions(timeout=0.5))
    assert time.monotonic() - started < 5


def test_unknown_settings_are_refused_before_rendering():
    with pytest.raises(PdfError, match="page size"):
        render_pdf(SIMPLE, RenderOptions(page_size="tabloid"))
    with pytest.raises(PdfError, match="variant"):
        render_pdf(SIMPLE, RenderOptions(variant="pdf/x-4"))
