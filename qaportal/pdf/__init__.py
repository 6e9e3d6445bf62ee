"""PDF rendering with WeasyPrint: locked-down URL fetcher, time limit, PDF/A output."""

from qaportal.pdf.fetcher import AssetFetcher, RefusedURL
from qaportal.pdf.render import (
    PAGE_SIZES,
    PDF_VARIANTS,
    PdfError,
    PdfTimeout,
    RenderedPdf,
    RenderOptions,
    render_pdf,
)

__all__ = [
    "PAGE_SIZES", "PDF_VARIANTS", "AssetFetcher", "PdfError", "PdfTimeout", "RefusedURL",
    "RenderOptions", "RenderedPdf", "render_pdf",
]
