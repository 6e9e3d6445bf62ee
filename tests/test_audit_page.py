"""The audit log page: readable, linked objects; the two verify actions."""

from __future__ import annotations

import re

import sqlalchemy as sa

from qaportal import audit, audit_anchor
from qaportal.models import AuditEvent
from tests.conftest import make_test_app
from tests.factories import DEFAULT_PASSWORD, make_study, make_user
from tests.test_audit_anchor import _delete_and_rehash


def test_verify_the_chain_shows_the_result_and_is_audited(app, client, login_as, db):
    manager = login_as("qa_manager")
    response = client.post("/audit/verify", data={"scope": "all"}, follow_redirects=True)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "audit log intact: 1 entries" in html and "flash-success" in html
    verified = db.session.scalar(sa.select(AuditEvent).where(
        AuditEvent.action == "audit.verified"))
    assert verified.actor_id == manager.id and verified.details["ok"] is True
    cps = audit_anchor.read_checkpoints(app.config["AUDIT_ANCHOR_FILE"], app.config["AUDIT_KEY"])
    assert any(cp.seq == verified.details["count"] for cp in cps)


def test_verify_the_chain_names_the_tampered_entry(app, client, login_as, db):
    login_as("admin")
    for i in range(4):
        audit.record("test.event", actor_label="test", number=i)
    db.session.commit()
    _delete_and_rehash(db, 2)
    html = client.post("/audit/verify", data={"scope": "all"},
                       follow_redirects=True).get_data(as_text=True)
    assert "audit log broken at entry 2: its MAC does not match" in html
    assert "flash-error" in html
    db.session.expire_all()
    verified = db.session.scalar(sa.select(AuditEvent).where(
        AuditEvent.action == "audit.verified"))
    assert verified.details["ok"] is False and verified.details["bad_seq"] == 2


def test_verify_new_entries_starts_at_the_last_verified_checkpoint(app, client, login_as, db):
    login_as("admin")
    for i in range(3):
        audit.record("test.event", actor_label="test", number=i)
    db.session.commit()
    html = client.post("/audit/verify", data={"scope": "all"},
                       follow_redirects=True).get_data(as_text=True)
    assert "audit log intact" in html and "checked after" not in html
    full = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "audit.verified"))
    for i in range(3):
        audit.record("test.event", actor_label="test", number=10 + i)
    db.session.commit()
    html = client.post("/audit/verify", data={"scope": "new"},
                       follow_redirects=True).get_data(as_text=True)
    # The default button re-reads only what follows the checkpoint the full pass wrote.
    assert "checked after the verified checkpoint of" in html
    assert f"at entry {full.details['count']})" in html
    last = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "audit.verified")
                              .order_by(AuditEvent.seq.desc())).first()
    assert last.details["scope"] == "new" and last.details["since"] == full.details["count"]
    # A change after the newest verified checkpoint is found by the quick check.
    for i in range(2):
        audit.record("test.event", actor_label="test", number=20 + i)
    db.session.commit()
    _delete_and_rehash(db, last.seq + 1)
    html = client.post("/audit/verify", data={"scope": "new"},
                       follow_redirects=True).get_data(as_text=True)
    assert f"audit log broken at entry {last.seq + 1}" in html and "flash-error" in html
    assert client.post("/audit/verify", data={"scope": "everything"}).status_code == 400


def _token(html: str) -> str:
    return re.search(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', html).group(1)


def test_verify_needs_a_csrf_token(tmp_path, db_url):
    app = make_test_app(tmp_path, db_url, WTF_CSRF_ENABLED=True)
    from qaportal.extensions import db as _db

    with app.app_context():
        user = make_user(roles=("qa_manager",))
        _db.session.commit()
        client = app.test_client()
        token = _token(client.get("/login").get_data(as_text=True))
        login = client.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD,
                                            "csrf_token": token})
        assert login.status_code == 302
        assert client.post("/audit/verify").status_code == 400
        assert not _db.session.scalar(sa.select(sa.func.count()).where(
            AuditEvent.action == "audit.verified"))
        token = _token(client.get("/audit/").get_data(as_text=True))
        assert client.post("/audit/verify", data={"csrf_token": token}).status_code == 302
        assert _db.session.scalar(sa.select(sa.func.count()).where(
            AuditEvent.action == "audit.verified")) == 1
        _db.session.remove()
        _db.engine.dispose()


def test_objects_are_readable_labels_linked_where_the_viewer_may_open_them(client, auth,
                                                                          login_as, db):
    bob = make_user(email="bob@example.test")
    study = make_study(bob)
    audit.record("user.updated", bob, actor=bob)
    audit.record("study.viewed", study, actor=bob)
    audit.record("report.exported", ("report_exports", 3), actor=bob)
    audit.record("thing.done", ("strange_things", "x1"), actor=bob)
    db.session.commit()
    login_as("admin")
    html = client.get("/audit/").get_data(as_text=True)
    assert f'<a href="/admin/users/{bob.id}">Account bob@example.test</a>' in html
    assert f'<a href="/studies/{study.id}">Study #{study.id}</a>' in html
    assert "<td class=\"audit-object\">Report export #3</td>" in html
    assert "Strange things #x1" in html
    assert "users " + str(bob.id) not in html  # no raw table names
    assert 'class="audit-time"' in html
    auth.logout()
    login_as("qa_manager")  # may open the study, not the account
    html = client.get("/audit/").get_data(as_text=True)
    assert "Account bob@example.test" in html
    assert f'href="/admin/users/{bob.id}"' not in html
    assert f'<a href="/studies/{study.id}">Study #{study.id}</a>' in html
