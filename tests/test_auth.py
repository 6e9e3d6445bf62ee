"""Sign-in, lockout, sign-out, sessions, password change, two-factor sign-in, redirects."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
import sqlalchemy as sa

from qaportal.auth.routes import safe_next
from qaportal.models import AuditEvent, User
from tests.factories import DEFAULT_PASSWORD, make_user

NEW_PASSWORD = "violet-harbour-lantern-42"


def _actions(db, action_prefix: str = "") -> list[AuditEvent]:
    stmt = sa.select(AuditEvent).order_by(AuditEvent.seq)
    if action_prefix:
        stmt = stmt.where(AuditEvent.action.like(f"{action_prefix}%"))
    return list(db.session.scalars(stmt))


# -- signing in and out ---------------------------------------------------------------------


def test_login_with_right_password_signs_in_and_audits(client, auth, db):
    user = make_user(email="ada@example.test")
    db.session.commit()
    response = auth.login("  ADA@example.test ")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert client.get("/").status_code == 200
    ev = _actions(db, "auth.login")[-1]
    assert (ev.action, ev.actor_id, ev.object_id) == ("auth.login", user.id, str(user.id))
    assert ev.details == {"method": "password"}
    assert ev.source_ip == "127.0.0.1"


def test_login_with_wrong_password_is_refused_generically_and_audited(client, auth, db):
    user = make_user()
    db.session.commit()
    wrong = auth.login(user, "not-the-password-at-all")
    unknown = auth.login("nobody@example.test", "not-the-password-at-all")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "Invalid e-mail or password." in response.get_data(as_text=True)
    failed = _actions(db, "auth.login_failed")
    assert [e.details["reason"] for e in failed] == ["wrong password", "unknown account"]
    assert failed[1].actor_label == "nobody@example.test"
    assert client.get("/").status_code == 302


def test_deactivated_account_cannot_sign_in(auth, db):
    user = make_user(active=False)
    db.session.commit()
    assert auth.login(user).status_code == 401
    assert _actions(db, "auth.login_refused")[-1].details == {"reason": "account deactivated"}


def test_logout_is_post_only_and_audited(client, login_as, db):
    login_as("radiologist")
    assert client.get("/logout").status_code == 405
    assert client.get("/").status_code == 200
    response = client.post("/logout")
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert client.get("/").status_code == 302
    assert _actions(db)[-1].action == "auth.logout"


def test_signed_in_user_visiting_login_goes_home(client, login_as):
    login_as("reviewer")
    assert client.get("/login").headers["Location"] == "/"


# -- lockout -------------------------------------------------------------------------------


def test_lockout_after_five_failures_with_reason_logged(client, auth, db):
    user = make_user()
    db.session.commit()
    for _ in range(4):
        assert "Invalid e-mail" in auth.login(user, "wrong-password-123").get_data(as_text=True)
    page = auth.login(user, "wrong-password-123").get_data(as_text=True)
    assert "locked" in page
    lock = _actions(db, "auth.lockout")
    assert len(lock) == 1
    assert lock[0].details["reason"] == "5 failed sign-ins within 15 minutes"
    # The right password does not help while the lock lasts.
    response = auth.login(user)
    assert response.status_code == 401 and "locked" in response.get_data(as_text=True)
    assert _actions(db)[-1].details == {"reason": "account locked"}
    db.session.refresh(user)
    assert user.locked_until > datetime.now(UTC) + timedelta(minutes=14)


def test_lockout_threshold_and_window_are_configurable(app, auth, db):
    app.config.update(LOCKOUT_THRESHOLD=2, LOCKOUT_WINDOW_MINUTES=1)
    user = make_user()
    db.session.commit()
    auth.login(user, "wrong-password-123")
    # A failure outside the window starts the count again.
    user.failed_window_start = datetime.now(UTC) - timedelta(minutes=2)
    db.session.commit()
    auth.login(user, "wrong-password-123")
    assert not _actions(db, "auth.lockout")
    auth.login(user, "wrong-password-123")
    assert len(_actions(db, "auth.lockout")) == 1


def test_sign_in_works_again_when_the_lock_expires(auth, db):
    user = make_user()
    db.session.commit()
    for _ in range(5):
        auth.login(user, "wrong-password-123")
    db.session.refresh(user)
    user.locked_until = datetime.now(UTC) - timedelta(seconds=1)
    db.session.commit()
    # One more failure after the lock is not a new lockout: the count starts again.
    auth.login(user, "wrong-password-123")
    assert len(_actions(db, "auth.lockout")) == 1
    assert auth.login(user).status_code == 302


def test_admin_unlocks_an_account(client, auth, db, login_as):
    user = make_user()
    db.session.commit()
    for _ in range(5):
        auth.login(user, "wrong-password-123")
    login_as("admin")
    assert client.post(f"/admin/users/{user.id}/unlock").status_code == 302
    db.session.refresh(user)
    assert user.locked_until is None and user.failed_logins == 0
    assert _actions(db)[-1].action == "user.unlocked"


# -- sessions ------------------------------------------------------------------------------


def _idle_for(db, user, minutes: float) -> None:
    """Make the user's open session look idle for that long (the server keeps the clock)."""
    from qaportal.models import UserSession

    db.session.execute(sa.update(UserSession).where(UserSession.user_id == user.id)
                       .values(last_seen_at=datetime.now(UTC) - timedelta(minutes=minutes)))
    db.session.commit()


def test_idle_timeout_ends_the_session(app, client, login_as, db):
    user = login_as("radiologist")
    _idle_for(db, user, 31)
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert _actions(db)[-1].action == "auth.session_expired"
    assert _actions(db)[-1].details == {"reason": "idle timeout"}
    assert client.get("/").status_code == 302


def test_activity_within_the_idle_timeout_keeps_the_session(client, login_as, db):
    user = login_as("radiologist")
    _idle_for(db, user, 29)
    assert client.get("/").status_code == 200


def test_idle_timeout_is_configurable(app, client, login_as, db):
    app.config["IDLE_TIMEOUT_MINUTES"] = 5
    user = login_as("radiologist")
    _idle_for(db, user, 6)
    assert client.get("/").status_code == 302


def test_cookies_are_secure_httponly_and_lax_outside_local_dev(tmp_path, db_url):
    from tests.conftest import make_test_app

    app = make_test_app(tmp_path, db_url, LOCAL=False)
    with app.app_context():
        make_user(email="sec@example.test")
        from qaportal.extensions import db

        db.session.commit()
        response = app.test_client().post(
            "/login", data={"email": "sec@example.test", "password": DEFAULT_PASSWORD}
        )
        cookie = response.headers["Set-Cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert "Strict-Transport-Security" in response.headers
        db.session.remove()
        db.engine.dispose()


def test_local_dev_cookies_are_not_secure(client, auth, db):
    make_user(email="loc@example.test")
    db.session.commit()
    cookie = auth.login("loc@example.test").headers["Set-Cookie"]
    assert "Secure" not in cookie and "HttpOnly" in cookie


def test_password_change_signs_out_other_sessions(app, client, auth, db):
    user = make_user()
    db.session.commit()
    other = app.test_client()
    other.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD})
    assert other.get("/").status_code == 200
    auth.login(user)
    response = client.post("/account/password", data={
        "current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD,
        "confirm": NEW_PASSWORD,
    })
    assert response.status_code == 302
    assert client.get("/").status_code == 200  # this session carries on
    assert other.get("/").status_code == 302  # the other one ended
    assert _actions(db)[-1].action == "user.password_changed"
    client.post("/logout")
    assert auth.login(user).status_code == 401
    assert auth.login(user, NEW_PASSWORD).status_code == 302


def test_deactivation_ends_the_users_sessions(app, client, db, login_as):
    victim = make_user()
    db.session.commit()
    theirs = app.test_client()
    theirs.post("/login", data={"email": victim.email, "password": DEFAULT_PASSWORD})
    assert theirs.get("/").status_code == 200
    login_as("admin")
    assert client.post(f"/admin/users/{victim.id}/deactivate").status_code == 302
    assert theirs.get("/").status_code == 302


@pytest.mark.parametrize(("current", "new", "message"), [
    ("wrong-current-pass", NEW_PASSWORD, "This is not your current password."),
    (DEFAULT_PASSWORD, "short", "Use at least 12 characters."),
    (DEFAULT_PASSWORD, "password1234", "commonly used"),
    (DEFAULT_PASSWORD, DEFAULT_PASSWORD, "different from the current one"),
])
def test_password_change_refusals_keep_the_form(client, login_as, current, new, message):
    login_as("radiologist")
    response = client.post("/account/password", data={
        "current_password": current, "new_password": new, "confirm": new,
    })
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)


def test_must_change_password_blocks_everything_else(client, auth, db):
    user = make_user(must_change_password=True)
    db.session.commit()
    auth.login(user)
    for path in ("/", "/account", "/studies/"):
        assert client.get(path).headers["Location"] == "/account/password"
    client.post("/account/password", data={
        "current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD,
        "confirm": NEW_PASSWORD,
    })
    assert client.get("/").status_code == 200
    db.session.refresh(user)
    assert user.must_change_password is False


# -- safe redirects ------------------------------------------------------------------------


@pytest.mark.parametrize("target", [
    "//evil.test", "https://evil.test", "/\\evil.test", "/\t/evil.test", "/\n/evil.test",
    "///evil.test", "http:/evil.test", "javascript:alert(1)", "evil.test", "",
])
def test_next_never_leaves_the_site(client, db, target):
    user = make_user()
    db.session.commit()
    response = client.post("/login", query_string={"next": target},
                           data={"email": user.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert safe_next(target) is None


def test_next_inside_the_site_is_followed(client, db):
    user = make_user()
    db.session.commit()
    response = client.get("/account?tab=2")
    assert response.headers["Location"] == "/login?next=/account?tab%3D2"
    response = client.post("/login", query_string={"next": "/account?tab=2"},
                           data={"email": user.email, "password": DEFAULT_PASSWORD})
    assert response.headers["Location"] == "/account?tab=2"


# -- two-factor sign-in --------------------------------------------------------------------


def _enrol(client) -> str:
    page = client.get("/account/2fa").get_data(as_text=True)
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    assert 'src="data:image/svg+xml;base64,' in page  # the QR code, inline, no CDN
    response = client.post("/account/2fa", data={"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 302, response.get_data(as_text=True)
    return secret


def _code(secret: str, steps_ahead: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


def test_totp_enrol_then_sign_in_with_a_code(client, auth, login_as, db):
    user = login_as("radiologist")
    secret = _enrol(client)
    db.session.refresh(user)
    assert user.totp_enabled and user.totp_secret == secret
    enabled = _actions(db, "auth.totp_enabled")
    assert len(enabled) == 1 and enabled[0].actor_id == user.id
    assert enabled[0].object_id == str(user.id) and secret not in str(enabled[0].details)
    client.post("/logout")
    response = auth.login(user)
    assert response.headers["Location"].startswith("/login/verify")
    assert client.get("/").status_code == 302  # not signed in yet
    bad = client.post("/login/verify", data={"code": "000000"})
    assert "not valid" in bad.get_data(as_text=True)
    # The code just used for enrolment is spent: use the next one (accepted with ±30 s drift).
    response = client.post("/login/verify", data={"code": _code(secret, 1)})
    assert response.headers["Location"] == "/"
    assert client.get("/").status_code == 200
    assert _actions(db, "auth.login")[-1].details == {"method": "password+totp"}


def test_totp_code_cannot_be_replayed(client, auth, login_as, db):
    user = login_as("radiologist")
    secret = _enrol(client)
    client.post("/logout")
    code = _code(secret, 1)
    auth.login(user)
    assert client.post("/login/verify", data={"code": code}).headers["Location"] == "/"
    client.post("/logout")
    auth.login(user)
    response = client.post("/login/verify", data={"code": code})
    assert response.status_code == 200 and "not valid" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_wrong_totp_codes_count_towards_lockout(client, auth, login_as, db):
    user = login_as("radiologist")
    secret = _enrol(client)
    client.post("/logout")
    auth.login(user)
    for _ in range(5):
        client.post("/login/verify", data={"code": "000000"})
    assert len(_actions(db, "auth.lockout")) == 1
    # Locked: even the right code and password are refused now.
    assert client.post("/login/verify", data={"code": _code(secret, 1)}).status_code == 302
    assert client.get("/").status_code == 302
    assert auth.login(user).status_code == 401


def test_verify_step_without_password_goes_to_login(client):
    assert client.get("/login/verify").headers["Location"] == "/login"


def test_totp_required_for_roles_forces_enrolment(app, client, login_as, db):
    app.config["REQUIRE_2FA_ROLES"] = ("admin",)
    login_as("admin")
    assert client.get("/").headers["Location"] == "/account/2fa"
    _enrol(client)
    assert client.get("/").status_code == 200
    # The role requirement also keeps it from being switched off.
    client.post("/account/2fa/disable", data={"password": DEFAULT_PASSWORD, "code": "123456"})
    assert db.session.scalar(sa.select(User.totp_enabled).where(User.email.like("%"))) is True


def test_totp_not_required_for_other_roles(app, client, login_as):
    app.config["REQUIRE_2FA_ROLES"] = ("admin",)
    login_as("radiologist")
    assert client.get("/").status_code == 200


def test_totp_disable_needs_password_and_code(client, login_as, db):
    user = login_as("radiologist")
    secret = _enrol(client)
    client.post("/account/2fa/disable", data={"password": "wrong-password-1", "code": "1"})
    db.session.refresh(user)
    assert user.totp_enabled
    client.post("/account/2fa/disable",
                data={"password": DEFAULT_PASSWORD, "code": _code(secret, 1)})
    db.session.refresh(user)
    assert not user.totp_enabled and user.totp_secret is None
    assert _actions(db)[-1].action == "auth.totp_disabled"
