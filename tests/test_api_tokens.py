"""Personal API tokens: Bearer authentication on the DICOMweb API, scopes, refusals, audit."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import g
from pydicom.data import get_testdata_file

from qaportal.admin import service as admin_service
from qaportal.auth import tokens
from qaportal.extensions import db as _db
from qaportal.models import ApiToken, AuditEvent, UserSession, utcnow
from tests.conftest import make_test_app
from tests.factories import DEFAULT_PASSWORD, make_study, make_user

STUDIES = "/dicomweb/studies"  # QIDO-RS (GET) and STOW-RS (POST)
STUDY_UID = "0020000D"
BOUNDARY = "tokenTestBoundary42"


def stow(client, **headers):
    """POST one real CT file to STOW-RS."""
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    body = (f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data
            + f"\r\n--{BOUNDARY}--\r\n".encode())
    content_type = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
    return client.post(STUDIES, data=body, headers={
        "Content-Type": content_type, "Accept": "application/dicom+json", **headers})


@pytest.fixture
def app(tmp_path, db_url):
    app = make_test_app(tmp_path, db_url, API_TOKEN_FAILURE_RATE_LIMIT="5 per minute")
    with app.app_context():
        yield app
        _db.session.remove()
        _db.engine.dispose()


def study_uids(resp) -> set[str]:
    """The StudyInstanceUIDs of a QIDO-RS answer."""
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    return {item[STUDY_UID]["Value"][0] for item in resp.get_json()}


def new_token(user, scopes=("read",), days=90, label="PACS"):
    new = tokens.create(user, label=label, scopes=scopes, expires_days=days, by=user)
    _db.session.commit()
    return new


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def events(action: str) -> list[AuditEvent]:
    return list(_db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)
                                    .order_by(AuditEvent.seq)))


def test_a_valid_token_authenticates_this_request_only(client):
    user, other = make_user(), make_user()
    own, _ = make_study(user), make_study(other)
    new = new_token(user)
    resp = client.get(STUDIES, headers=bearer(new.secret))
    assert study_uids(resp) == {own.study_uid}  # as its owner, with the owner's access
    assert "Set-Cookie" not in resp.headers
    assert _db.session.scalar(sa.select(sa.func.count()).select_from(UserSession)) == 0
    searched = events("dicomweb.searched")
    assert [e.actor_id for e in searched] == [user.id]
    # The next request without the header is anonymous: nothing was remembered.
    again = client.get(STUDIES)
    assert again.status_code == 401
    assert again.headers["WWW-Authenticate"] == "Bearer"


def test_each_use_is_audited_with_method_and_endpoint_never_the_path(client):
    user = make_user()
    new = new_token(user, scopes=("read", "write"))
    assert new.token.last_used_at is None
    study = make_study(user)
    assert study_uids(client.get(f"{STUDIES}?StudyInstanceUID={study.study_uid}",
                                 headers=bearer(new.secret))) == {study.study_uid}
    assert stow(client, **bearer(new.secret)).status_code == 200
    used = events("api_token.used")
    assert [(e.details["method"], e.details["endpoint"]) for e in used] == [
        ("GET", "dicomweb.search_studies"), ("POST", "dicomweb.stow_studies")]
    assert all(e.actor_id == user.id and e.object_type == "api_tokens"
               and e.object_id == str(new.token.id) for e in used)
    assert study.study_uid not in str([e.details for e in used])
    _db.session.expire_all()
    assert _db.session.get(ApiToken, new.token.id).last_used_at is not None


def test_the_use_is_recorded_even_when_the_view_fails(app, client):
    def fails():
        _db.session.add(ApiToken(user_id=0, label="x", token_prefix="x", token_hash="x",
                                 scopes="read"))
        raise RuntimeError("the view broke")

    app.add_url_rule("/dicomweb/token-probe-fails", endpoint="dicomweb.token_probe_fails",
                     view_func=fails)
    user = make_user()
    new = new_token(user)
    with pytest.raises(RuntimeError):
        client.get("/dicomweb/token-probe-fails", headers=bearer(new.secret))
    _db.session.rollback()
    (used,) = events("api_token.used")
    assert used.details["endpoint"] == "dicomweb.token_probe_fails"
    assert _db.session.get(ApiToken, new.token.id).last_used_at is not None
    assert _db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 1


def test_a_token_wins_over_a_session_cookie_and_leaves_the_session_alone(client, login_as):
    signed_in = login_as("radiologist")
    mine = make_study(signed_in)
    row = _db.session.scalar(sa.select(UserSession))
    row.last_seen_at = utcnow() - timedelta(minutes=10)  # due for a touch
    _db.session.commit()
    seen = row.last_seen_at
    other = make_user()
    theirs = make_study(other)
    new = new_token(other)
    resp = client.get(STUDIES, headers=bearer(new.secret))
    assert study_uids(resp) == {theirs.study_uid}
    assert "Set-Cookie" not in resp.headers
    _db.session.refresh(row)
    assert row.last_seen_at == seen
    assert study_uids(client.get(STUDIES)) == {mine.study_uid}


def test_the_secret_is_stored_only_as_its_hash(app):
    user = make_user()
    new = new_token(user)
    assert new.secret.startswith("qap_") and len(new.secret) == 4 + 43
    row = _db.session.get(ApiToken, new.token.id)
    assert row.token_hash == tokens.hash_secret(new.secret) != new.secret
    assert row.token_prefix == new.secret[:12]
    text = str(_db.session.execute(sa.select(ApiToken.__table__)).all())
    assert new.secret not in text
    created = events("api_token.created")
    assert created and new.secret not in str(created[0].details)
    assert created[0].details["scopes"] == "read"


@pytest.mark.parametrize("state", ["expired", "revoked", "deactivated", "inactive", "unknown"])
def test_refused_tokens_answer_the_same_401(client, state, caplog):
    admin = make_user(roles=("admin",))
    user = make_user()
    new = new_token(user)
    secret = new.secret
    if state == "expired":
        new.token.expires_at = utcnow() - timedelta(seconds=1)
    elif state == "revoked":
        tokens.revoke(new.token, by=user, reason="test")
    elif state == "deactivated":
        admin_service.set_active(user, False, by=admin)
    elif state == "inactive":  # deactivated without revoking: refused at load all the same
        user.active = False
    else:
        secret = "qap_" + "A" * 43
    _db.session.commit()
    with caplog.at_level(logging.WARNING):
        resp = client.get(STUDIES, headers=bearer(secret))
    assert resp.status_code == 401
    assert resp.get_json() == {"error": "invalid or expired API token"}
    assert resp.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert "Set-Cookie" not in resp.headers
    refused = events("api_token.refused")
    if state == "unknown":
        assert refused == []  # no audit entry per guess: rate-limited and logged
        assert "unknown token" in caplog.text and secret not in caplog.text
    else:
        reason = {"deactivated": "revoked", "inactive": "user deactivated"}.get(state, state)
        assert [e.details["reason"] for e in refused] == [reason]
        assert refused[0].object_id == str(new.token.id)
    assert events("api_token.used") == []


def test_deactivating_an_account_revokes_its_tokens(app):
    admin = make_user(roles=("admin",))
    user = make_user()
    first, second = new_token(user, label="a"), new_token(user, label="b")
    tokens.revoke(second.token, by=user, reason="no longer needed")
    admin_service.set_active(user, False, by=admin)
    _db.session.commit()
    assert first.token.revoked_at is not None
    assert first.token.revoke_reason == "user deactivated"
    assert first.token.revoked_by_id == admin.id
    assert second.token.revoke_reason == "no longer needed"  # revoked once, kept as it was
    revoked = events("api_token.revoked")
    assert [e.details["reason"] for e in revoked] == ["no longer needed", "user deactivated"]
    # Reactivation does not bring a token back.
    admin_service.set_active(user, True, by=admin)
    _db.session.commit()
    assert tokens.verify(first.secret).refused == "revoked"


def test_deactivation_through_the_edit_form_revokes_too(app):
    admin = make_user(roles=("admin",))
    user = make_user()
    new = new_token(user)
    admin_service.update_user(user, email=user.email, full_name=user.full_name,
                              roles=["radiologist"], subspecialties=[], active=False, by=admin)
    _db.session.commit()
    assert new.token.revoke_reason == "user deactivated"


@pytest.mark.parametrize(("scopes", "method", "status"), [
    (("read",), "GET", 200), (("read",), "POST", 403),
    (("write",), "GET", 403), (("write",), "POST", 200),
    (("read", "write"), "GET", 200), (("read", "write"), "POST", 200),
])
def test_scopes(client, scopes, method, status):
    user = make_user()
    new = new_token(user, scopes=scopes)
    make_study(user)
    if method == "GET":
        resp = client.get(STUDIES, headers=bearer(new.secret))
    else:
        resp = stow(client, **bearer(new.secret))
    assert resp.status_code == status
    if status == 403:
        assert "scope" in resp.get_json()["error"]


@pytest.mark.parametrize("path", ["/account", "/", "/studies/", "/admin/users", "/login"])
def test_a_token_never_opens_a_page(client, path):
    user = make_user(roles=("admin", "radiologist"))
    new = new_token(user)
    resp = client.get(path, headers=bearer(new.secret))
    assert resp.status_code == 401
    assert resp.is_json and "API" in resp.get_json()["error"]
    assert "Set-Cookie" not in resp.headers
    assert events("api_token.used") == []


def test_mandatory_steps_do_not_apply_to_a_token(tmp_path, db_url):
    app = make_test_app(tmp_path, db_url, REQUIRE_2FA_ROLES=("admin",))
    with app.app_context():
        user = make_user(roles=("admin",), must_change_password=True)
        new = new_token(user)
        resp = app.test_client().get(STUDIES, headers=bearer(new.secret))
        assert resp.status_code == 200 and resp.get_json() == []
        assert "Set-Cookie" not in resp.headers
        _db.session.remove()
        _db.engine.dispose()


def test_a_malformed_bearer_header_is_refused(client):
    for value in ("Bearer", "Bearer ", "bearer not-a-token", "Bearer qap_" + "x" * 300):
        resp = client.get(STUDIES, headers={"Authorization": value})
        assert resp.status_code == 401, value
        assert resp.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_other_schemes_are_left_to_the_session(client, login_as):
    user = login_as("radiologist")
    study = make_study(user)
    resp = client.get(STUDIES, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert study_uids(resp) == {study.study_uid}


def test_refused_tokens_are_throttled_per_client(client):
    user = make_user()
    good = new_token(user)
    revoked = new_token(user, label="old")
    tokens.revoke(revoked.token, by=user, reason="test")
    _db.session.commit()
    for i in range(5):  # the limit is 5 per minute in this app
        secret = revoked.secret if i == 0 else f"qap_guess{i}"
        assert client.get(STUDIES, headers=bearer(secret)).status_code == 401
    resp = client.get(STUDIES, headers=bearer("qap_guess6"))
    assert resp.status_code == 429
    assert int(resp.headers["Retry-After"]) >= 1
    # Throttled before the look-up: a right guess now gains nothing either.
    assert client.get(STUDIES, headers=bearer(good.secret)).status_code == 429
    assert len(events("api_token.refused")) == 1  # the known token's refusal only
    other = client.get(STUDIES, headers=bearer(good.secret),
                       environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert other.status_code == 200  # counted per client address


def test_valid_uses_do_not_count_towards_the_limit(client):
    user = make_user()
    new = new_token(user)
    for _ in range(8):
        assert client.get(STUDIES, headers=bearer(new.secret)).status_code == 200


def test_create_checks_label_scopes_expiry_and_the_limit(app):
    app.config["API_TOKENS_PER_USER"] = 2
    user = make_user()
    for label in ("", "   ", "x" * 101, "two\nlines", "bidi\u202eevil"):
        with pytest.raises(tokens.TokenError):
            tokens.create(user, label=label, scopes=("read",), expires_days=30, by=user)
    for scopes in ((), ("admin",), ("read", "delete")):
        with pytest.raises(tokens.TokenError):
            tokens.create(user, label="x", scopes=scopes, expires_days=30, by=user)
    for days in (0, -1, 3651):
        with pytest.raises(tokens.TokenError):
            tokens.create(user, label="x", scopes=("read",), expires_days=days, by=user)
    first = new_token(user, scopes=("write", "read"), days=None)
    assert first.token.scopes == "read write" and first.token.expires_at is None
    assert first.token.scope_set == frozenset({"read", "write"})
    expired = new_token(user, label="expired")
    expired.token.expires_at = utcnow() - timedelta(days=1)  # no longer counts
    new_token(user, label="second")
    with pytest.raises(tokens.TokenError, match="at most 2"):
        tokens.create(user, label="third", scopes=("read",), expires_days=30, by=user)
    inactive = make_user(active=False)
    with pytest.raises(tokens.TokenError, match="deactivated"):
        tokens.create(inactive, label="x", scopes=("read",), expires_days=30, by=None)


def test_the_scope_column_refuses_unknown_values(app):
    user = make_user()
    _db.session.add(ApiToken(user_id=user.id, label="x", token_prefix="qap_x",
                             token_hash="0" * 64, scopes="admin"))
    with pytest.raises(sa.exc.IntegrityError):
        _db.session.flush()
    _db.session.rollback()


def test_a_session_post_needs_the_csrf_header_a_bearer_post_does_not(tmp_path, db_url):
    app = make_test_app(tmp_path, db_url, WTF_CSRF_ENABLED=True)
    with app.app_context():
        user = make_user()
        new = new_token(user, scopes=("write",))
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        resp = client.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD,
                                           "csrf_token": csrf})
        assert resp.status_code == 302
        g.pop("csrf_token", None)
        refused = stow(client)
        assert refused.status_code == 400
        assert "X-CSRFToken" in refused.get_json()["error"]
        account = client.get("/account").get_data(as_text=True)
        csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', account).group(1)
        assert stow(client, **{"X-CSRFToken": csrf}).status_code == 200
        # A Bearer POST carries no cookie, hence no forgery: no CSRF token needed.
        other = app.test_client()
        resp = stow(other, **bearer(new.secret))
        assert resp.status_code == 200
        used = events("api_token.used")
        assert [(e.object_id, e.details["endpoint"]) for e in used] == [
            (str(new.token.id), "dicomweb.stow_studies")]
        # A token POSTed to a page is refused before the CSRF check: 401, not 400.
        assert other.post("/account/password", headers=bearer(new.secret)).status_code == 401
        _db.session.remove()
        _db.engine.dispose()


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("API_PATH_PREFIXES", ("/",), "API_PATH_PREFIXES must be paths"),
    ("API_PATH_PREFIXES", ("/dicomweb",), "API_PATH_PREFIXES must be paths"),
    ("API_TOKEN_FAILURE_RATE_LIMIT", "lots", "QAPORTAL_API_TOKEN_FAILURE_RATE_LIMIT='lots'"),
    ("API_TOKENS_PER_USER", 0, "QAPORTAL_API_TOKENS_PER_USER must be at least 1"),
])
def test_token_settings_that_cannot_work_are_refused(tmp_path, setting, value, message):
    from qaportal import create_app
    from qaportal.config import ConfigError

    with pytest.raises(ConfigError, match=re.escape(message)):
        create_app({"INSTANCE_PATH": str(tmp_path), setting: value})


def test_a_password_change_or_a_lockout_leaves_tokens_working(client):
    """Documented choice: tokens are separate credentials (a PACS keeps working); the owner
    revokes them on the account page after a suspected compromise."""
    from qaportal.auth import service

    user = make_user()
    new = new_token(user)
    service.change_password(user, "another-long-password-9")
    user.locked_until = utcnow() + timedelta(minutes=15)
    _db.session.commit()
    assert client.get(STUDIES, headers=bearer(new.secret)).status_code == 200
