"""Administration: accounts, roles, credentials, password reset; never delete."""

from __future__ import annotations

import re
from datetime import date, timedelta

import sqlalchemy as sa

from qaportal.models import AuditEvent, License, User
from tests.factories import DEFAULT_PASSWORD, make_certification, make_user

NEW_PASSWORD = "violet-harbour-lantern-42"


def _user(db, email: str) -> User:
    return db.session.scalar(sa.select(User).where(User.email == email))


def _events(db, user: User, prefix: str) -> list[AuditEvent]:
    """The audit events about this account whose action starts with prefix, oldest first."""
    return db.session.scalars(
        sa.select(AuditEvent)
        .where(AuditEvent.object_type == "users", AuditEvent.object_id == str(user.id),
               AuditEvent.action.like(f"{prefix}%"))
        .order_by(AuditEvent.seq)).all()


def test_admin_creates_a_user_with_a_temporary_password(app, client, login_as, db):
    login_as("admin")
    response = client.post("/admin/users/new", data={
        "email": "New.Person@Example.org", "full_name": " New Person ",
        "roles": ["radiologist", "reviewer"], "subspecialties": ["neuro", "msk"],
    })
    assert response.status_code == 200
    password = re.search(r'id="temp-password">([^<]+)<', response.get_data(as_text=True))[1]
    user = _user(db, "new.person@example.org")
    assert user.full_name == "New Person"
    assert user.role_names == {"radiologist", "reviewer"}
    assert user.subspecialty_names == {"neuro", "msk"}
    assert user.must_change_password and user.active
    # The new user must choose their own password at first sign-in.
    client.post("/logout")
    client.post("/login", data={"email": user.email, "password": password})
    assert client.get("/").headers["Location"] == "/account/password"
    client.post("/account/password", data={"current_password": password,
                                            "new_password": NEW_PASSWORD,
                                            "confirm": NEW_PASSWORD})
    assert client.get("/").status_code == 200


def test_create_user_errors_keep_what_was_typed(client, login_as, db):
    login_as("admin")
    make_user(email="taken@example.org")
    db.session.commit()
    response = client.post("/admin/users/new", data={
        "email": "taken@example.org", "full_name": "Someone Typed This", "roles": ["reviewer"],
    })
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "already exists" in html and "Someone Typed This" in html
    response = client.post("/admin/users/new", data={"email": "x@example.org",
                                                     "full_name": "No Role"})
    assert "at least one role" in response.get_data(as_text=True)
    response = client.post("/admin/users/new", data={"email": "x@example.org",
                                                     "full_name": "Bad", "roles": ["root"]})
    assert response.status_code == 200 and _user(db, "x@example.org") is None


def test_admin_edits_roles_and_deactivates_but_never_deletes(client, login_as, db):
    admin = login_as("admin")
    user = make_user(roles=("radiologist",), subspecialties=("neuro",))
    db.session.commit()
    response = client.post(f"/admin/users/{user.id}", data={
        "email": user.email, "full_name": "Renamed", "roles": ["reviewer", "qa_manager"],
        "subspecialties": ["chest"], "active": "y",
    })
    assert response.status_code == 302
    db.session.refresh(user)
    assert user.full_name == "Renamed"
    assert user.role_names == {"reviewer", "qa_manager"}
    assert user.subspecialty_names == {"chest"}
    client.post(f"/admin/users/{user.id}/deactivate")
    db.session.refresh(user)
    assert user.active is False
    assert db.session.get(User, user.id) is not None
    client.post(f"/admin/users/{user.id}/activate")
    db.session.refresh(user)
    assert user.active is True
    events = _events(db, user, "user.")
    assert [e.action for e in events] == ["user.updated", "user.deactivated", "user.activated"]
    assert {e.actor_id for e in events} == {admin.id}
    assert not any(r.rule.endswith("/delete") for r in client.application.url_map.iter_rules())


def test_admin_cannot_deactivate_self_or_drop_own_admin_role(client, login_as, db):
    admin = login_as("admin")
    response = client.post(f"/admin/users/{admin.id}/deactivate", follow_redirects=True)
    assert "cannot deactivate your own account" in response.get_data(as_text=True)
    response = client.post(f"/admin/users/{admin.id}", data={
        "email": admin.email, "full_name": admin.full_name, "roles": ["reviewer"],
        "active": "y",
    })
    assert "cannot remove your own administrator role" in response.get_data(as_text=True)
    response = client.post(f"/admin/users/{admin.id}", data={
        "email": admin.email, "full_name": admin.full_name, "roles": ["admin"],
    })
    assert "deactivate yourself" in response.get_data(as_text=True)
    db.session.refresh(admin)
    assert admin.active and admin.role_names == {"admin"}
    assert client.get("/").status_code == 200


def test_changing_email_to_a_taken_one_is_refused(client, login_as, db):
    login_as("admin")
    make_user(email="one@example.org")
    two = make_user(email="two@example.org")
    db.session.commit()
    response = client.post(f"/admin/users/{two.id}", data={
        "email": "ONE@example.org", "full_name": "Two", "roles": ["reviewer"], "active": "y",
    })
    assert "already exists" in response.get_data(as_text=True)
    db.session.refresh(two)
    assert two.email == "two@example.org"


def test_user_list_filters(client, login_as, db):
    login_as("admin")
    make_user(roles=("reviewer",), full_name="Zed Reviewer", email="zed@example.org")
    make_user(roles=("radiologist",), full_name="Yan Gone", active=False)
    db.session.commit()
    html = client.get("/admin/users?q=zed").get_data(as_text=True)
    assert "Zed Reviewer" in html and "Yan Gone" not in html
    html = client.get("/admin/users?status=inactive").get_data(as_text=True)
    assert "Yan Gone" in html and "Zed Reviewer" not in html
    html = client.get("/admin/users?role=reviewer").get_data(as_text=True)
    assert "Zed Reviewer" in html and "Yan Gone" not in html


def test_licence_and_certification_are_added_and_shown_with_expiry(client, login_as, db):
    admin = login_as("admin")
    user = make_user()
    db.session.commit()
    soon = date.today() + timedelta(days=10)
    response = client.post(f"/admin/users/{user.id}/licenses", data={
        "lic-jurisdiction": "tx", "lic-number": "TX-778", "lic-valid_from": "2020-01-01",
        "lic-valid_to": soon.isoformat(),
    })
    assert response.status_code == 302
    client.post(f"/admin/users/{user.id}/certifications", data={
        "cert-board": "American Board of Radiology", "cert-specialty": "Neuroradiology",
        "cert-certified_on": "2015-06-01", "cert-expires_on": "2020-06-01",
    })
    html = client.get(f"/admin/users/{user.id}").get_data(as_text=True)
    assert "Licence TX" in html and "TX-778" in html
    assert f"expires {soon.isoformat()}" in html and "expired 2020-06-01" in html
    db.session.refresh(user)
    assert user.licenses[0].jurisdiction == "TX"
    lic, cert = _events(db, user, "credential.")
    assert lic.action == "credential.license_added" and lic.actor_id == admin.id
    assert lic.details == {"license_id": user.licenses[0].id, "jurisdiction": "TX",
                           "valid_to": soon.isoformat()}
    assert cert.action == "credential.certification_added" and cert.actor_id == admin.id
    assert cert.details == {"certification_id": user.certifications[0].id,
                            "board": "American Board of Radiology",
                            "specialty": "Neuroradiology"}


def test_licence_with_bad_dates_keeps_the_typed_values(client, login_as, db):
    login_as("admin")
    user = make_user()
    db.session.commit()
    response = client.post(f"/admin/users/{user.id}/licenses", data={
        "lic-jurisdiction": "CA", "lic-number": "A-12345", "lic-valid_from": "2025-05-01",
        "lic-valid_to": "2024-05-01",
    })
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "The end date is before the start date." in html
    assert 'value="A-12345"' in html and 'value="2024-05-01"' in html
    response = client.post(f"/admin/users/{user.id}/licenses", data={
        "lic-jurisdiction": "California", "lic-number": "A-1", "lic-valid_from": "not-a-date",
        "lic-valid_to": "2024-05-01",
    })
    assert response.status_code == 422
    assert 'value="California"' in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(License)) == 0


def test_certification_expiry_before_certification_is_refused(client, login_as, db):
    login_as("admin")
    user = make_user()
    db.session.commit()
    response = client.post(f"/admin/users/{user.id}/certifications", data={
        "cert-board": "ABR", "cert-specialty": "DR", "cert-certified_on": "2020-01-01",
        "cert-expires_on": "2019-01-01",
    })
    assert response.status_code == 422
    assert 'value="2019-01-01"' in response.get_data(as_text=True)


def test_credential_of_another_user_cannot_be_removed_through_this_one(client, login_as, db):
    admin = login_as("admin")
    owner = make_user(licenses=["CA"])
    other = make_user()
    cert = make_certification(owner)
    db.session.commit()
    lic_id = owner.licenses[0].id
    assert client.post(f"/admin/users/{other.id}/license/{lic_id}/remove").status_code == 404
    assert client.post(
        f"/admin/users/{other.id}/certification/{cert.id}/remove").status_code == 404
    assert _events(db, other, "credential.") == []  # refused: nothing recorded
    assert client.post(f"/admin/users/{owner.id}/license/{lic_id}/remove").status_code == 302
    assert client.post(
        f"/admin/users/{owner.id}/certification/{cert.id}/remove").status_code == 302
    db.session.refresh(owner)
    assert owner.licenses == [] and owner.certifications == []
    removed = _events(db, owner, "credential.")
    assert [(e.action, e.details, e.actor_id) for e in removed] == [
        ("credential.license_removed", {"credential_id": lic_id}, admin.id),
        ("credential.certification_removed", {"credential_id": cert.id}, admin.id)]


def test_reset_password_ends_sessions_and_forces_a_change(app, client, login_as, db):
    victim = make_user()
    db.session.commit()
    theirs = app.test_client()
    theirs.post("/login", data={"email": victim.email, "password": DEFAULT_PASSWORD})
    login_as("admin")
    response = client.post(f"/admin/users/{victim.id}/reset")
    temp = re.search(r'id="temp-password">([^<]+)<', response.get_data(as_text=True))[1]
    assert theirs.get("/").status_code == 302
    assert theirs.post("/login", data={"email": victim.email,
                                       "password": DEFAULT_PASSWORD}).status_code == 401
    theirs.post("/login", data={"email": victim.email, "password": temp})
    assert theirs.get("/").headers["Location"] == "/account/password"
