"""Cross-origin access to DICOMweb: off unless origins are configured.

A viewer served from another origin may call the API when its exact origin is listed in
DICOMWEB_CORS_ORIGINS. Such calls carry an API token (Authorization: Bearer); cookies are
never allowed across origins (no Access-Control-Allow-Credentials), so a page of another
site can never use a signed-in user's session. A preflight (OPTIONS with
Access-Control-Request-Method) is answered before authentication, as browsers send it
without credentials; an origin not listed gets no CORS header at all, and the browser
withholds the answer from its page.
"""

from __future__ import annotations

from flask import Flask, current_app, request
from flask.wrappers import Response

from qaportal.dicomweb import bp

ALLOWED_METHODS = "GET, POST, OPTIONS"
ALLOWED_HEADERS = "Authorization, Accept, Content-Type, If-None-Match"
EXPOSED_HEADERS = "Content-Type, Content-Length, Content-Location, ETag, Warning, Retry-After"
MAX_AGE = "600"


def allowed_origin() -> str | None:
    """Return the request's Origin when it is configured for DICOMweb, else None."""
    origin = request.headers.get("Origin")
    if origin and origin in current_app.config["DICOMWEB_CORS_ORIGINS"]:
        return origin
    return None


def _is_preflight() -> bool:
    return (request.method == "OPTIONS" and request.path.startswith(bp.url_prefix + "/")
            and "Access-Control-Request-Method" in request.headers)


def answer_preflight():
    """Before every other hook: answer a DICOMweb preflight (204; headers only if allowed)."""
    if not _is_preflight():
        return None
    response = Response(status=204)
    origin = allowed_origin()
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
        response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        response.headers["Access-Control-Max-Age"] = MAX_AGE
    response.vary.add("Origin")
    return response


@bp.after_request
def add_cors_headers(response):
    """An answer to an allowed origin says so, and which headers its page may read."""
    origin = allowed_origin()
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    if current_app.config["DICOMWEB_CORS_ORIGINS"]:
        response.vary.add("Origin")
    return response


def init_app(app: Flask) -> None:
    """Answer preflights first, before authentication (browsers send them without it)."""
    app.before_request_funcs.setdefault(None, []).insert(0, answer_preflight)
