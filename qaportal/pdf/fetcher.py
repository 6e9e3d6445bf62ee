"""A WeasyPrint URL fetcher that only serves the portal's own static files.

Report templates are rendered from our own HTML, but that HTML carries user-entered
text (comments, descriptions); a fetcher that followed any URL would let such text
read local files or reach internal services while the PDF is made. This one serves
`qaportal-asset:PATH` and `/static/PATH` from qaportal/static, `file:` URLs only
inside that folder, and `data:` URLs; everything else is refused without any I/O.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from weasyprint.urls import URLFetcher, URLFetcherResponse

STATIC_ROOT = Path(__file__).resolve().parent.parent / "static"
ASSET_SCHEME = "qaportal-asset:"
STATIC_PREFIX = "/static/"


class RefusedURL(ValueError):
    """A URL the report renderer will not fetch."""


class AssetFetcher(URLFetcher):
    """Fetch only the app's static assets (and data: URLs); refuse all else."""

    def __init__(self, static_root: Path = STATIC_ROOT, **kwargs):
        super().__init__(allowed_protocols=("data",), allow_redirects=False, **kwargs)
        self.static_root = static_root.resolve()
        self.refused: list[str] = []

    def fetch(self, url: str, headers=None) -> URLFetcherResponse:
        """Return the asset the URL names, or raise RefusedURL."""
        lowered = url[:16].lower()
        if lowered.startswith("data:"):
            return super().fetch(url, headers)
        if lowered.startswith(ASSET_SCHEME):
            return self._serve(url, url[len(ASSET_SCHEME):])
        if url.startswith(STATIC_PREFIX):
            return self._serve(url, url[len(STATIC_PREFIX):])
        if lowered.startswith("file:"):
            path = Path(url2pathname(unquote(urlsplit(url).path)))
            return self._serve(url, path, absolute=True)
        return self._refuse(url, "only the portal's own assets may be loaded")

    def _serve(self, url: str, relative, absolute: bool = False) -> URLFetcherResponse:
        if not absolute:
            relative = unquote(urlsplit(str(relative)).path).lstrip("/")
        target = (Path(relative) if absolute else self.static_root / relative).resolve()
        if not target.is_relative_to(self.static_root) or not target.is_file():
            return self._refuse(url, "not a file of the portal's static assets")
        mime = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return URLFetcherResponse(
            target.as_uri(), target.read_bytes(), {"Content-Type": mime}
        )

    def _refuse(self, url: str, reason: str):
        self.refused.append(url)
        raise RefusedURL(f"refused {url[:200]!r}: {reason}")
