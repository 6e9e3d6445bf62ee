"""Server-side sessions: sign-out, absolute lifetime, password-change guessing, TOTP enrolment,
the uniform failure message, the sign-in rate limit and 2FA for privileged roles."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pyotp
import sqlalchemy as sa
from flask import Flask

from qaportal import create_app
from qaportal.models import AuditEvent, RateLimitCounter, User, UserSession
from tests.conftest import Client, make_test_app
from tests.factories import DEFAULT_PASSWORD, make_user

COOKIE = "qaportal_session"


def _actions(db, action: str) -> list[AuditEvent]:
    return list(db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)))


def _replay(app: Flask, value: str) -> Client:
    """Return a fresh client (another browser) holding a copy of a session cookie."""
    other = app.test_client()
    other.set_cookie(COOKIE, value)
    return other


def _flash(response) -> str:
    match = re.search(r'class="flash flash-error"[^>]*>(.*?)</div>',
                      response.get_data(as_text=True), re.S)
    assert match, response.get_data(as_text=True)[:300]
    return match.group(1).strip()


# -- sign-out ends the session on the server ----------------------------------------------------


def test_copied_cookie_opens_nothing_after_logout(app, client, login_as, db):
    user = login_as("radiologist")
    copied = client.get_cookie(COOKIE).value
    assert _replay(app, copied).get("/studies/").status_code == 200  # the copy works meanwhile
    client.post("/logout")
    for path in ("/studies/", "/account"):
        response = _replay(app, copied).get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login")
    row = db.session.scalar(sa.select(UserSession).where(UserSession.user_id == user.id))
    assert row.ended_at is not None and row.end_reason == "signed out"


def test_cookie_carries_only_a_random_session_token(app, client, login_as, db):
    user = login_as("radiologist")
    data = app.session_interface.get_signing_serializer(app).loads(
        client.get_cookie(COOKIE).value)
    token = data["_user_id"]
    assert str(user.id) not in token.split(".") and len(token) >= 40
    row = db.session.scalar(sa.select(UserSession).where(UserSession.user_id == user.id))
    assert row.token_hash != token  # only the hash is stored


def test_absolute_lifetime_ends_an_active_session(app, client, login_as, db):
    user = login_as("radiologist")
    db.session.execute(sa.update(UserSession).where(UserSession.user_id == user.id).values(
        created_at=datetime.now(UTC) - timedelta(hours=12, minutes=1),
        last_seen_at=datetime.now(UTC)))
    db.session.commit()
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert _actions(db, "auth.session_expired")[-1].details == {"reason": "absolute lifetime"}
    assert client.get("/account").status_code == 302


def test_password_change_ends_other_sessions_on_the_server(app, client, auth, login_as, db):
    login_as("radiologist")
    copied = client.get_cookie(COOKIE).value
    other = app.test_client()  # a second browser with its own sign-in
    user = db.session.scalar(sa.select(User))
    other.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD})
    new = "violet-harbour-lantern-42"
    response = other.post("/account/password", data={
        "current_password": DEFAULT_PASSWORD, "new_password": new, "confirm": new})
    assert response.status_code == 302
    assert other.get("/account").status_code == 200  # the changing session stays
    assert _replay(app, copied).get("/account").status_code == 302
    reasons = db.session.scalars(sa.select(UserSession.end_reason)).all()
    assert "password changed" in reasons


# -- change-password guesses count like sign-in failures ----------------------------------------


def test_wrong_current_passwords_lock_the_account_and_end_the_session(app, client, login_as,
                                                                      db):
    user = login_as("radiologist")
    copied = client.get_cookie(COOKIE).value
    data = {"current_password": "not-my-password-at-all", "new_password": "x" * 20,
            "confirm": "x" * 20}
    for _ in range(4):
        response = client.post("/account/password", data=data)
        assert response.status_code == 200
        assert "This is not your current password." in response.get_data(as_text=True)
    response = client.post("/account/password", data=data)
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    failed = _actions(db, "auth.login_failed")
    assert [e.details["reason"] for e in failed] == ["wrong current password"] * 5
    assert len(_actions(db, "auth.lockout")) == 1
    db.session.refresh(user)
    assert user.locked_until is not None
    assert _replay(app, copied).get("/account").status_code == 302
    # Locked: the right password does not sign in either.
    assert client.post("/login", data={"email": user.email,
                                       "password": DEFAULT_PASSWORD}).status_code == 401


# -- one answer for locked, unknown and wrong ---------------------------------------------------


def test_locked_and_unknown_accounts_get_the_same_answer(client, auth, db):
    user = make_user(email="real@example.test")
    other = make_user()
    db.session.commit()
    for _ in range(5):
        auth.login(user, "wrong-password-123")
    db.session.refresh(user)
    assert user.locked_until is not None
    locked = auth.login(user, "wrong-password-123")
    locked_right = auth.login(user)
    unknown = auth.login("nobody@example.test", "wrong-password-123")
    wrong = auth.login(other, "wrong-password-123")
    assert {r.status_code for r in (locked, locked_right, unknown, wrong)} == {401}
    assert _flash(locked) == _flash(locked_right) == _flash(unknown) == _flash(wrong)
    assert "locked" not in _flash(locked).split(".")[0]


# -- TOTP enrolment secret stays on the server --------------------------------------------------


def test_totp_enrolment_secret_is_not_in_the_cookie(app, client, login_as, db):
    user = login_as("radiologist")
    page = client.get("/account/2fa").get_data(as_text=True)
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    cookie = client.get_cookie(COOKIE).value
    data = app.session_interface.get_signing_serializer(app).loads(cookie)
    assert secret not in repr(data)
    assert "totp_enrol_secret" not in data
    response = client.post("/account/2fa", data={"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 302
    db.session.refresh(user)
    assert user.totp_enabled and user.totp_secret == secret
    assert db.session.scalar(sa.select(UserSession.totp_pending_secret)) is None


# -- 2FA for privileged roles outside local mode ------------------------------------------------


def test_admin_and_qa_manager_must_enrol_outside_local_mode(tmp_path, db_url):
    from qaportal.extensions import db

    app = make_test_app(tmp_path, db_url, LOCAL=False)
    try:
        with app.app_context():
            people = {role: make_user(roles=(role,)) for role in ("admin", "qa_manager",
                                                                    "radiologist")}
            db.session.commit()
            for role, user in people.items():
                c = app.test_client()
                kw = {"base_url": "https://localhost"}
                c.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD}, **kw)
                response = c.get("/", **kw)
                if role == "radiologist":
                    assert response.status_code == 200
                else:
                    assert response.headers["Location"] == "/account/2fa", role
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


# -- per-client rate limiting of sign-in --------------------------------------------------------


def test_sign_in_is_rate_limited_per_client_with_a_clear_audited_page(app, client, db):
    app.config["SIGN_IN_RATE_LIMIT"] = "3 per minute"
    data = {"email": "nobody@example.test", "password": "wrong-password-123"}
    for _ in range(3):
        assert client.post("/login", data=data).status_code == 401
    response = client.post("/login", data=data)
    assert response.status_code == 429
    assert "Too many attempts" in response.get_data(as_text=True)
    events = _actions(db, "auth.rate_limited")
    assert len(events) == 1 and events[0].details["endpoint"] == "auth.login"
    assert "nobody@example.test" not in str(events[0].details)
    # Another client address is not affected; GET of the form is never limited.
    other = client.post("/login", data=data, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 401
    assert client.get("/login").status_code == 200


def test_two_app_processes_on_one_database_share_the_count(app, client, db, db_url, tmp_path):
    app.config["SIGN_IN_RATE_LIMIT"] = "3 per minute"
    second = create_app({"TESTING": True, "INSTANCE_PATH": str(tmp_path / "second"),
                         "SQLALCHEMY_DATABASE_URI": db_url, "SECRET_KEY": "test-secret-key",
                         "LOCAL": True, "WTF_CSRF_ENABLED": False,
                         "SIGN_IN_RATE_LIMIT": "3 per minute",
                         # two servers of one database share its audit key (audit_key.py)
                         "AUDIT_KEY": app.config["AUDIT_KEY"]})
    second.test_client_class = Client
    data = {"email": "nobody@example.test", "password": "wrong-password-123"}
    try:
        assert client.post("/login", data=data).status_code == 401
        assert client.post("/login", data=data).status_code == 401
        other = second.test_client()
        assert other.post("/login", data=data).status_code == 401
        assert other.post("/login", data=data).status_code == 429  # 4th hit, other process
        assert db.session.scalar(sa.select(sa.func.count()).select_from(RateLimitCounter)) >= 1
    finally:
        from qaportal.extensions import db as _db

        with second.app_context():
            _db.session.remove()
            _db.engine.dispose()


def test_totp_code_step_is_rate_limited_too(app, client, auth, db):
    app.config["SIGN_IN_RATE_LIMIT"] = "2 per minute"
    user = make_user(totp_enabled=True, totp_secret=pyotp.random_base32())
    db.session.commit()
    auth.login(user)
    assert client.post("/login/verify", data={"code": "000000"}).status_code == 200
    assert client.post("/login/verify", data={"code": "000001"}).status_code == 200
    assert client.post("/login/verify", data={"code": "000002"}).status_code == 429


def test_the_code_step_expires_five_minutes_after_the_password_step(client, auth, db):
    user = make_user(totp_enabled=True, totp_secret=pyotp.random_base32())
    db.session.commit()
    assert auth.login(user).headers["Location"].startswith("/login/verify")
    with client.session_transaction() as sess:
        sess["pending_2fa_at"] -= 301
    code = pyotp.TOTP(user.totp_secret).now()
    response = client.post("/login/verify", data={"code": code})
    assert response.headers["Location"] == "/login"
    assert client.get("/").status_code == 302
