"""Error answers of the DICOMweb API: plain JSON, never an HTML page, never patient data."""

from __future__ import annotations

from flask import jsonify
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from qaportal.dicomweb import bp

_KEPT_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After")


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException):
    """Answer errors as {"error": "..."}; 404 says only "not found" (never why)."""
    code = exc.code or 500
    response = jsonify(error="not found" if code == 404 else (exc.description or exc.name))
    response.status_code = code
    headers = dict(exc.get_headers())
    for name in _KEPT_HEADERS:
        if name in headers:
            response.headers[name] = headers[name]
    return response


@bp.errorhandler(CSRFError)
def csrf_error(exc: CSRFError):
    """A browser's POST without a valid X-CSRFToken header."""
    response = jsonify(error="CSRF token missing or invalid: send it in X-CSRFToken")
    response.status_code = 400
    return response


# Flask looks for a handler of the status code everywhere (blueprint, then app) before a
# handler of the exception's class: without these, the app's page handlers of these codes
# (qaportal.hooks) would answer, and the reason given to abort() would be lost.
for _code in (401, 403, 404, 405):
    bp.register_error_handler(_code, http_error)
