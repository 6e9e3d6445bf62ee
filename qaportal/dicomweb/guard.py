"""Who may call the DICOMweb API, and with what: session or API token, scopes, CSRF.

Authentication itself happens before every request (qaportal.auth.tokens loads a Bearer
token; otherwise the session cookie as on every page). Here, for this blueprint only:
- CSRF: the blueprint is exempt from the global form check; a POST authenticated by the
  session cookie must carry the token in an X-CSRFToken header, a Bearer POST need not
  (no cookie, so no cross-site forgery).
- Scope: a token's scopes must allow the request (read: QIDO and WADO; write: STOW);
  a session may do both.
"""

from __future__ import annotations

from flask import abort, current_app, g, request

from qaportal.dicomweb import bp
from qaportal.extensions import csrf

csrf.exempt(bp)

WRITE_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH"})


def api_token():
    """Return the API token this request is authenticated with, or None (session)."""
    return g.get("api_token")


@bp.before_request
def check_csrf_and_scope():
    token = api_token()
    if request.method in WRITE_METHODS:
        if token is None:
            if current_app.config.get("WTF_CSRF_ENABLED", True):  # as the global check
                csrf.protect()
        elif "write" not in token.scope_set:
            abort(403, description="this API token lacks the write scope")
    elif token is not None and "read" not in token.scope_set:
        abort(403, description="this API token lacks the read scope")
