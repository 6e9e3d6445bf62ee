"""The account page's API tokens (create with the password, shown once, revoke) and the
administrators' list of every token."""

from __future__ import annotations

import secrets

import sqlalchemy as sa

from qaportal.auth import tokens
from qaportal.models import ApiToken, AuditEvent, UserSession
from tests.factories import DEFAULT_PASSWORD, make_user

FORM = {"label": "PACS at Harbourview", "scopes": ["read", "write"], "expires": "90",
        "password": DEFAULT_PASSWORD}


def form(**changes) -> dict:
    """The token form as the account page sends it: a fresh nonce each time it is shown."""
    return {**FORM, "nonce": secrets.token_urlsafe(16), **changes}


def _tokens(db, user) -> list[ApiToken]:
    return list(db.session.scalars(sa.select(ApiToken).where(ApiToken.user_id == user.id)))


def _events(db, action: str) -> list[AuditEvent]:
    return list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)))


def test_a_new_token_is_shown_once_and_never_kept(client, db, login_as):
    user = login_as("radiologist")
    resp = client.post("/account/tokens", data=form())
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    page = resp.get_data(as_text=True)
    (token,) = _tokens(db, user)
    secret = page.split('<code id="api-token">')[1].split("</code>")[0]
    assert tokens.verify(secret).token.id == token.id
    assert "Authorization: Bearer" in page and "http://localhost/dicomweb" in page
    assert "js/tokens.js" in page
    # Not in the cookie (no flash), not in the database, not on the account page again.
    assert secret not in resp.headers.get("Set-Cookie", "")
    with client.session_transaction() as sess:
        assert secret not in str(dict(sess))
    assert token.token_hash != secret and secret not in str(token.__dict__)
    account = client.get("/account").get_data(as_text=True)
    assert secret not in account and f"{token.token_prefix}…" in account
    assert "PACS at Harbourview" in account and "read write" in account
    assert token.scopes == "read write" and token.created_by_id == user.id
    (ev,) = _events(db, "api_token.created")
    assert ev.actor_id == user.id and secret not in str(ev.details)


def test_the_same_form_sent_again_creates_no_second_token(client, db, login_as):
    user = login_as("radiologist")
    page = client.get("/account").get_data(as_text=True)
    nonce = page.split('name="nonce" type="hidden" value="')[1].split('"')[0]
    sent = form(nonce=nonce)
    assert client.post("/account/tokens", data=sent).status_code == 200
    again = client.post("/account/tokens", data=sent)  # the browser's reload of that page
    assert again.status_code == 302 and again.headers["Location"].endswith("#api-tokens")
    assert "qap_" not in again.get_data(as_text=True)
    assert len(_tokens(db, user)) == 1
    assert "was sent already" in client.get("/account").get_data(as_text=True)
    fresh = client.get("/account").get_data(as_text=True)
    assert nonce not in fresh  # each form shown carries a new one
    assert client.post("/account/tokens", data=form()).status_code == 200
    assert len(_tokens(db, user)) == 2


def test_expiry_choices(client, db, login_as):
    user = login_as("radiologist")
    for expires in ("30", "365", "never"):
        assert client.post("/account/tokens", data=form(expires=expires)).status_code \
            == 200
    days = sorted((t.expires_at - t.created_at).days if t.expires_at else 0
                  for t in _tokens(db, user))
    assert days == [0, 30, 365]
    assert client.post("/account/tokens", data=form(expires="7")).status_code == 422


def test_a_wrong_password_counts_towards_the_lockout(app, client, db, login_as):
    user = login_as("radiologist")
    resp = client.post("/account/tokens", data=form(password="not-my-password"))
    assert resp.status_code == 422
    assert "This is not your current password." in resp.get_data(as_text=True)
    assert _tokens(db, user) == []
    db.session.refresh(user)
    assert user.failed_logins == 1
    (ev,) = _events(db, "auth.login_failed")
    assert ev.details["reason"] == "wrong password for a new API token"
    for _ in range(app.config["LOCKOUT_THRESHOLD"] - 1):
        resp = client.post("/account/tokens", data=form(password="still-wrong"))
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    db.session.refresh(user)
    assert user.locked_until is not None
    open_sessions = db.session.scalar(sa.select(sa.func.count()).select_from(UserSession)
                                      .where(UserSession.ended_at.is_(None)))
    assert open_sessions == 0
    assert client.get("/account").status_code == 302  # signed out
    assert _tokens(db, user) == []


def test_the_form_refuses_no_scope_a_bad_label_and_too_many_tokens(app, client, db,
                                                                   login_as):
    user = login_as("radiologist")
    resp = client.post("/account/tokens", data=form(scopes=[]))
    assert resp.status_code == 422 and "Choose at least one scope." in resp.get_data(True)
    resp = client.post("/account/tokens", data=form(label="line\r\nbreak"))
    assert resp.status_code == 422 and "no line breaks" in resp.get_data(True)
    resp = client.post("/account/tokens", data=form(scopes=["read", "admin"]))
    assert resp.status_code == 422
    app.config["API_TOKENS_PER_USER"] = 1
    assert client.post("/account/tokens", data=form()).status_code == 200
    resp = client.post("/account/tokens", data=form())
    assert resp.status_code == 422 and "at most 1 active API tokens" in resp.get_data(True)
    assert len(_tokens(db, user)) == 1
    db.session.refresh(user)
    assert user.failed_logins == 0  # form errors are no password failures


def test_revoke_own_token_only(client, db, login_as):
    other = make_user()
    theirs = tokens.create(other, label="theirs", scopes=("read",), expires_days=30, by=other)
    db.session.commit()
    user = login_as("radiologist")
    client.post("/account/tokens", data=form())
    (mine,) = _tokens(db, user)
    assert client.post(f"/account/tokens/{theirs.token.id}/revoke").status_code == 404
    resp = client.post(f"/account/tokens/{mine.id}/revoke")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/account#api-tokens")
    db.session.refresh(mine)
    assert mine.revoked_at is not None and mine.revoked_by_id == user.id
    assert mine.revoke_reason == "revoked by its owner"
    page = client.get("/account").get_data(as_text=True)
    assert "revoked" in page and f"/account/tokens/{mine.id}/revoke" not in page
    client.post(f"/account/tokens/{mine.id}/revoke")
    assert len(_events(db, "api_token.revoked")) == 1  # once
    db.session.refresh(theirs.token)
    assert theirs.token.revoked_at is None


def test_administrators_list_and_revoke_every_token(client, db, login_as):
    owner = make_user(full_name="Marie Curie")
    new = tokens.create(owner, label="radium lab", scopes=("write",), expires_days=None,
                        by=owner)
    db.session.commit()
    admin = login_as("admin")
    page = client.get("/admin/tokens").get_data(as_text=True)
    assert "Marie Curie" in page and "radium lab" in page and f"{new.token.token_prefix}…" in page
    assert new.secret not in page
    assert 'href="/admin/tokens"' in client.get("/admin/users").get_data(as_text=True)
    resp = client.post(f"/admin/tokens/{new.token.id}/revoke")
    assert resp.status_code == 302
    db.session.refresh(new.token)
    assert new.token.revoked_by_id == admin.id
    assert new.token.revoke_reason == "revoked by an administrator"
    (ev,) = _events(db, "api_token.revoked")
    assert ev.actor_id == admin.id and ev.details["owner_id"] == owner.id
    assert "revoked by an administrator" in client.get("/admin/tokens").get_data(as_text=True)


def test_the_admin_list_is_for_administrators_only(client, db, login_as):
    login_as("qa_manager", "radiologist", "reviewer")
    assert client.get("/admin/tokens").status_code == 403
