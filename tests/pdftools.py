"""Read PDFs the way a person's tools would: poppler's command-line tools and pypdf."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

from pypdf import PdfReader

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def pdf_text(data: bytes) -> str:
    """Return the text of every page, as pdftotext lays it out."""
    return subprocess.run(["pdftotext", "-layout", "-", "-"], input=data,
                          capture_output=True, check=True).stdout.decode()


def page_texts(data: bytes) -> list[str]:
    """Return each page's text."""
    return [p.extract_text() for p in PdfReader(io.BytesIO(data)).pages]


def pdf_fonts(path: Path) -> list[dict[str, str]]:
    """Return pdffonts' table: one dict per font (name, type, emb, sub, uni)."""
    out = subprocess.run(["pdffonts", str(path)], capture_output=True, check=True,
                         text=True).stdout.splitlines()
    fonts = []
    for line in out[2:]:
        parts = line.split()
        # name type... encoding emb sub uni object-id generation
        fonts.append({"name": parts[0], "emb": parts[-5], "sub": parts[-4], "uni": parts[-3]})
    return fonts


def xmp_text(data: bytes) -> str:
    """Return the document's XMP metadata packet as text."""
    reader = PdfReader(io.BytesIO(data))
    stream = reader.trailer["/Root"]["/Metadata"].get_object()
    return stream.get_data().decode("utf-8")


def info(data: bytes) -> dict[str, str]:
    """Return the document information dictionary."""
    meta = PdfReader(io.BytesIO(data)).metadata or {}
    return {str(k): str(v) for k, v in meta.items()}


def page_png(data: bytes, name: str) -> Path:
    """Render page 1 to test-artifacts/NAME.png for people to look at; return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    pdf = ARTIFACTS / f"{name}.pdf"
    pdf.write_bytes(data)
    subprocess.run(["pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile",
                    str(pdf), str(ARTIFACTS / name)], check=True)
    return ARTIFACTS / f"{name}.png"
