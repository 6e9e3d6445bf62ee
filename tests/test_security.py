"""Default-deny, CSRF, security headers, error pages, no inline script, health check."""

from __future__ import annotations

import re
import socket

import pytest
from flask import url_for

from qaportal import create_app
from qaportal.extensions import db as _db
from tests.factories import DEFAULT_PASSWORD, make_user
from tests.permission_matrix import EXPECTED, OBJECTS, ROLES

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
EXTERNAL_ASSET = re.compile(r"""(?:src|href)=["'](?:https?:)?//""", re.I)


def _check_headers(response):
    h = response.headers
    csp = h["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["X-Frame-Options"] == "DENY"
    assert h["Referrer-Policy"] == "same-origin"


def _get_pages(app, objs, users):
    """Yield the URL of every GET route, with ids from the matrix objects."""
    with app.test_request_context():
        for endpoint, entry in sorted(EXPECTED.items()):
            rule = next(app.url_map.iter_rules(endpoint))
            if "GET" not in rule.methods or entry.get("method") == "POST":
                continue
            values = entry["params"](objs, users) if "params" in entry else {}
            yield endpoint, url_for(endpoint, **values)


@pytest.mark.parametrize("who", ["anonymous", *ROLES])
def test_every_page_has_security_headers_and_no_inline_script(app, client, auth, db, who):
    users = {r: make_user(roles=(r,)) for r in ROLES}
    objs = {name: build(users) for name, build in OBJECTS.items()}
    db.session.commit()
    if who != "anonymous":
        auth.login(users[who])
    pages = list(_get_pages(app, objs, users)) + [("missing", "/no/such/page")]
    for endpoint, url in pages:
        response = client.get(url)
        _check_headers(response)
        if response.mimetype == "text/html":
            html = response.get_data(as_text=True)
            assert not INLINE_SCRIPT.search(html), endpoint
            assert ' style="' not in html, endpoint
            assert not EXTERNAL_ASSET.search(html), endpoint
            if endpoint != "static":
                assert response.headers["Cache-Control"] == "no-store"
        # A streamed body not read here is closed now, not later by the garbage collector
        # inside another request's context.
        response.close()


def test_api_style_requests_get_json_401_instead_of_a_redirect(client):
    response = client.get("/", headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert response.get_json() == {"error": "authentication required"}


def test_csrf_protection_refuses_forms_without_a_token(tmp_path, db_url):
    from tests.conftest import make_test_app

    app = make_test_app(tmp_path, db_url, WTF_CSRF_ENABLED=True)
    with app.app_context():
        user = make_user()
        _db.session.commit()
        client = app.test_client()
        data = {"email": user.email, "password": DEFAULT_PASSWORD}
        refused = client.post("/login", data=data)
        assert refused.status_code == 400
        assert "Form expired" in refused.get_data(as_text=True)
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        assert client.post("/login", data={**data, "csrf_token": token}).status_code == 302
        # Logout without a token is refused too: a cross-site form cannot sign anyone out.
        assert client.post("/logout").status_code == 400
        assert client.get("/").status_code == 200
        _db.session.remove()
        _db.engine.dispose()


def test_403_and_404_pages_say_nothing_about_the_object(client, login_as):
    login_as("radiologist")
    forbidden = client.get("/admin/users")
    assert forbidden.status_code == 403
    assert "does not have access" in forbidden.get_data(as_text=True)
    missing = client.get("/studies/4242")
    assert missing.status_code == 404
    body = missing.get_data(as_text=True)
    assert "4242" not in body and "There is nothing here" in body


def test_500_page_leaks_nothing(tmp_path, db_url):
    from tests.conftest import make_test_app

    app = make_test_app(tmp_path, db_url, PROPAGATE_EXCEPTIONS=False)

    @app.route("/boom")
    def boom():
        raise RuntimeError("secret-detail in /srv/qaportal/secret.py")

    with app.app_context():
        user = make_user()
        _db.session.commit()
        client = app.test_client()
        client.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD})
        response = client.get("/boom")
        body = response.get_data(as_text=True)
        assert response.status_code == 500
        assert "Something went wrong" in body and "Reference" in body
        assert "secret-detail" not in body and "Traceback" not in body
        _check_headers(response)
        _db.session.remove()
        _db.engine.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_health_is_503_when_the_database_is_unreachable(tmp_path):
    # Nothing listens on a port just released by the OS.
    url = f"postgresql://qaportal@127.0.0.1:{_free_port()}/qaportal"
    app = create_app({"INSTANCE_PATH": str(tmp_path), "SQLALCHEMY_DATABASE_URI": url,
                      "SECRET_KEY": "x", "TESTING": True})
    response = app.test_client().get("/health")
    assert response.status_code == 503
    assert response.get_json() == {"status": "error", "database": "error"}
    _check_headers(response)


def test_health_is_public_and_json(client):
    response = client.get("/health")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == {"status": "ok", "database": "ok"}
