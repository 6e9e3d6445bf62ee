"""With CSRF protection on, every state-changing opinion route refuses a POST without a token."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from flask import g

from qaportal.extensions import db as _db
from qaportal.models import Opinion, OpinionRequest
from qaportal.opinions import service
from tests.conftest import make_test_app
from tests.factories import DEFAULT_PASSWORD, make_opinion_request, make_study, make_user

ACTIONS = ["claim", "accept", "decline", "cancel", "reroute", "messages", "opinion", "draft",
           "sign", "addenda"]


@pytest.fixture
def csrf_app(tmp_path, db_url):
    app = make_test_app(tmp_path, db_url, WTF_CSRF_ENABLED=True)
    with app.app_context():
        yield app
        _db.session.remove()
        _db.engine.dispose()


def _login(client, user):
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    resp = client.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD,
                                       "csrf_token": token})
    assert resp.status_code == 302
    # The fixture's app context is shared with the client's requests, and so is `g`, where
    # Flask-WTF caches the token of the session that signing in replaced.
    g.pop("csrf_token", None)


@pytest.mark.parametrize("action", ACTIONS)
def test_post_without_token_is_refused(csrf_app, action):
    a = make_user(licenses=["CA"])
    b = make_user(subspecialties=["neuro"], licenses=["CA"])
    req = make_opinion_request(make_study(a), a)
    service.claim(req, b)
    _db.session.commit()
    client = csrf_app.test_client()
    _login(client, b)
    resp = client.post(f"/opinions/{req.id}/{action}",
                       data={"reason": "x", "body": "x", "findings": "x",
                             "secret": DEFAULT_PASSWORD},
                       json=None)
    assert resp.status_code == 400
    if action == "draft":
        assert client.post(f"/opinions/{req.id}/draft",
                           json={"findings": "x"}).status_code == 400
    assert _db.session.scalar(sa.select(sa.func.count()).select_from(Opinion)) == 0
    assert _db.session.get(OpinionRequest, req.id).status == "accepted"


def test_autosave_with_header_token_is_accepted(csrf_app):
    a = make_user(licenses=["CA"])
    b = make_user(subspecialties=["neuro"], licenses=["CA"])
    req = make_opinion_request(make_study(a), a)
    service.claim(req, b)
    _db.session.commit()
    client = csrf_app.test_client()
    _login(client, b)
    page = client.get(f"/opinions/{req.id}/opinion").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    resp = client.post(f"/opinions/{req.id}/draft", json={"findings": "via header"},
                       headers={"X-CSRFToken": token})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert _db.session.scalar(sa.select(Opinion.findings)) == "via header"
