"""Hospital privileges on the account page: added and removed by administrators, audited,
shown with their validity, CSRF-protected."""

from __future__ import annotations

import re
from datetime import date, timedelta

import sqlalchemy as sa

from qaportal.extensions import db as _db
from qaportal.models import AuditEvent, Privilege
from tests.factories import DEFAULT_PASSWORD, make_user


def _add(client, user, **over):
    data = {"priv-facility": "St Mary's Medical Center",
            "priv-description": "Diagnostic CT interpretation",
            "priv-granted_on": (date.today() - timedelta(days=700)).isoformat(),
            "priv-valid_to": (date.today() + timedelta(days=400)).isoformat(),
            "priv-notes": "Proctoring completed."}
    data.update({f"priv-{k}": v for k, v in over.items()})
    return client.post(f"/admin/users/{user.id}/privileges", data=data)


def test_privileges_are_added_shown_with_validity_and_removed(client, login_as, db):
    admin = login_as("admin")
    user = make_user()
    db.session.commit()
    assert _add(client, user).status_code == 302
    soon, past = date.today() + timedelta(days=10), date.today() - timedelta(days=3)
    assert _add(client, user, facility="Valley Hospital", description="Neuro MR",
                valid_to=soon.isoformat(), notes="").status_code == 302
    assert _add(client, user, facility="Old Clinic", description="Mammography",
                valid_to=past.isoformat()).status_code == 302
    html = client.get(f"/admin/users/{user.id}").get_data(as_text=True)
    assert "Diagnostic CT interpretation" in html and "St Mary&#39;s Medical Center" in html
    assert "Proctoring completed." in html
    assert f"expires {soon.isoformat()}" in html and f"expired {past.isoformat()}" in html
    privs = db.session.scalars(sa.select(Privilege).order_by(Privilege.id)).all()
    assert [p.description for p in privs] == ["Diagnostic CT interpretation", "Neuro MR",
                                              "Mammography"]
    added = db.session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "credential.privilege_added")).all()
    assert len(added) == 3 and added[0].actor_id == admin.id
    assert added[0].object_id == str(user.id)
    assert added[0].details["description"] == "Diagnostic CT interpretation"
    # removal: only through the owning account, audited
    other = make_user()
    db.session.commit()
    assert client.post(f"/admin/users/{other.id}/privilege/{privs[0].id}/remove"
                       ).status_code == 404
    assert client.post(f"/admin/users/{user.id}/privilege/{privs[0].id}/remove"
                       ).status_code == 302
    assert _db.session.get(Privilege, privs[0].id) is None
    removed = db.session.scalar(sa.select(AuditEvent).where(
        AuditEvent.action == "credential.privilege_removed"))
    assert removed.details["credential_id"] == privs[0].id and removed.actor_id == admin.id


def test_only_administrators_manage_privileges(client, login_as, db):
    login_as("qa_manager")
    user = make_user()
    db.session.commit()
    assert _add(client, user).status_code == 403
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Privilege)) == 0


def test_privilege_with_bad_dates_keeps_the_typed_values(client, login_as, db):
    login_as("admin")
    user = make_user()
    db.session.commit()
    resp = _add(client, user, granted_on="2025-05-01", valid_to="2024-05-01")
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "The end date is before the grant date." in html and 'value="2024-05-01"' in html
    assert _add(client, user, facility="").status_code == 422
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Privilege)) == 0


def test_adding_a_privilege_needs_a_csrf_token(tmp_path, db_url):
    from tests.conftest import make_test_app

    app = make_test_app(tmp_path, db_url, WTF_CSRF_ENABLED=True)
    with app.app_context():
        admin = make_user(roles=("admin",))
        subject = make_user()
        _db.session.commit()
        client = app.test_client()

        def login(user):
            page = client.get("/login").get_data(as_text=True)
            token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
            client.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD,
                                        "csrf_token": token})

        login(admin)
        assert _add(client, subject).status_code == 400  # no token
        page = client.get(f"/admin/users/{subject.id}").get_data(as_text=True)
        form = re.search(r'action="/admin/users/\d+/privileges".*?</form>', page, re.S).group(0)
        token = re.search(r'name="priv-csrf_token" type="hidden" value="([^"]+)"',
                          form).group(1)
        assert _add(client, subject, csrf_token=token).status_code == 302
        assert _db.session.scalar(sa.select(sa.func.count()).select_from(Privilege)) == 1
        _db.session.remove()
        _db.engine.dispose()


def test_radiologist_sees_own_privileges_on_the_account_page(client, login_as, db):
    from tests.factories import make_privilege

    user = login_as("radiologist")
    make_privilege(user, "Diagnostic CT interpretation",
                   valid_to=date.today() + timedelta(days=5))
    db.session.commit()
    html = client.get("/account").get_data(as_text=True)
    assert "Diagnostic CT interpretation" in html
    assert f"expires {(date.today() + timedelta(days=5)).isoformat()}" in html
