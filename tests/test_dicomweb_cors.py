"""Cross-origin DICOMweb: none by default; configured origins only, with tokens, never
cookies; preflights answered before authentication."""

from __future__ import annotations

import pytest

from qaportal.auth import tokens
from qaportal.config import ConfigError
from qaportal.extensions import db
from tests.factories import make_user

VIEWER = "https://viewer.example.org"


def _token(user) -> str:
    secret = tokens.create(user, label="viewer", scopes=("read",), expires_days=1,
                           by=user).secret
    db.session.commit()
    return secret


def test_no_cross_origin_access_by_default(app, client):
    user = make_user(roles=("radiologist",))
    db.session.commit()
    headers = {"Origin": VIEWER, "Authorization": f"Bearer {_token(user)}"}
    resp = client.get("/dicomweb/studies", headers=headers)
    assert resp.status_code == 200
    assert "Access-Control-Allow-Origin" not in resp.headers
    pre = client.open("/dicomweb/studies", method="OPTIONS",
                      headers={"Origin": VIEWER, "Access-Control-Request-Method": "GET"})
    assert pre.status_code == 204 and "Access-Control-Allow-Origin" not in pre.headers


def test_a_configured_origin_may_call_with_a_token(app, client):
    app.config["DICOMWEB_CORS_ORIGINS"] = (VIEWER,)
    user = make_user(roles=("radiologist",))
    db.session.commit()
    pre = client.open("/dicomweb/studies", method="OPTIONS",
                      headers={"Origin": VIEWER, "Access-Control-Request-Method": "GET",
                               "Access-Control-Request-Headers": "authorization"})
    assert pre.status_code == 204
    assert pre.headers["Access-Control-Allow-Origin"] == VIEWER
    assert "Authorization" in pre.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in pre.headers  # never cookies
    resp = client.get("/dicomweb/studies",
                      headers={"Origin": VIEWER, "Authorization": f"Bearer {_token(user)}"})
    assert resp.status_code == 200 and resp.headers["Access-Control-Allow-Origin"] == VIEWER
    assert "Warning" in resp.headers["Access-Control-Expose-Headers"]
    assert "Origin" in resp.headers["Vary"]
    # Another origin gets nothing, even with a valid token (its page cannot read the answer).
    other = client.get("/dicomweb/studies", headers={"Origin": "https://evil.example",
                                                     "Authorization": f"Bearer {_token(user)}"})
    assert "Access-Control-Allow-Origin" not in other.headers
    # Errors say it too, so the page can read why (401 without credentials).
    denied = client.get("/dicomweb/studies", headers={"Origin": VIEWER})
    assert denied.status_code == 401 and denied.headers["Access-Control-Allow-Origin"] == VIEWER
    # Pages of the portal never answer cross-origin.
    page = client.open("/studies/", method="OPTIONS",
                       headers={"Origin": VIEWER, "Access-Control-Request-Method": "GET"})
    assert "Access-Control-Allow-Origin" not in page.headers


@pytest.mark.parametrize("bad", ["*", "https://viewer.example.org/path", "viewer.example.org"])
def test_origins_are_checked_at_start(bad, tmp_path, monkeypatch):
    from qaportal import create_app

    monkeypatch.setenv("QAPORTAL_DICOMWEB_CORS_ORIGINS", f"{VIEWER},{bad}")
    with pytest.raises(ConfigError, match="DICOMWEB_CORS_ORIGINS"):
        create_app({"INSTANCE_PATH": str(tmp_path), "SQLALCHEMY_DATABASE_URI": "sqlite://"})
