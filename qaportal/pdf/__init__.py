"""PDF rendering with WeasyPrint: locked-down URL fetcher, time limit, PDF/A output.

The rendering itself runs in a child process (qaportal.pdf.worker); the app and the CLI
never import WeasyPrint (0.3 s and tens of MB at every start-up). The fetcher, which
subclasses WeasyPrint's, is imported from here only when asked for.
"""

from qaportal.pdf.render import (
    PAGE_SIZES,
    PDF_VARIANTS,
    PdfError,
    PdfTimeout,
    RenderedPdf,
    Renderer,
    RenderOptions,
    render_pdf,
)

__all__ = [
    "PAGE_SIZES", "PDF_VARIANTS", "AssetFetcher", "PdfError", "PdfTimeout", "RefusedURL",
    "RenderOptions", "RenderedPdf", "Renderer", "render_pdf",
]


def __getattr__(name: str):
    if name in ("AssetFetcher", "RefusedURL"):
        from qaportal.pdf import fetcher

        return getattr(fetcher, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
