"""Admin pages of the known DICOM peers and the reader identifier on the account page:
admins only, CSRF, audited, the same checks as the command line, secrets write-only."""

from __future__ import annotations

import re

import pytest
from flask import g

from qaportal.extensions import db as _db
from qaportal.feeds.secrets import unseal
from qaportal.models import DicomPeer, User
from tests.conftest import make_test_app
from tests.factories import DEFAULT_PASSWORD, make_user
from tests.feeds_world import audit_actions, peer_by_ae

SECRET = "stow-user:Harbour-Lantern-77"


def _form(owner_user, **over) -> dict:
    data = {"ae_title": "CT_NORTH", "addresses": "10.1.2.3\n10.2.0.0/16",
            "owner": owner_user.email,
            "description": "North campus", "send_kind": "stow", "send_host": "",
            "send_port": "", "send_ae": "", "stow_url": "https://pacs.example.org/dicom-web",
            "stow_credentials": SECRET}
    data.update(over)
    return data


def _peer(ae: str = "CT_NORTH") -> DicomPeer | None:
    return peer_by_ae(ae)


_actions = audit_actions


@pytest.fixture
def owner(app):
    user = make_user(roles=("radiologist",), email="north@example.test", full_name="North PACS")
    _db.session.commit()
    return user


def test_non_admins_are_refused(app, client, auth, owner):
    peer = DicomPeer(ae_title="CT1", addresses=["10.1.2.3"], owner_id=owner.id)
    _db.session.add(peer)
    _db.session.commit()
    urls = ["/admin/peers", "/admin/peers/new", f"/admin/peers/{peer.id}"]
    for url in urls:
        assert client.get(url).status_code == 302  # anonymous: to sign in
    for role in ("radiologist", "reviewer", "qa_manager"):
        user = make_user(roles=(role,))
        _db.session.commit()
        auth.login(user)
        for url in urls:
            assert client.get(url).status_code == 403, (role, url)
        assert client.post("/admin/peers/new", data=_form(owner)).status_code == 403
        assert client.post(f"/admin/peers/{peer.id}/disable").status_code == 403
        auth.logout()
    assert _peer("CT1").active is True and _peer() is None and not _actions("peer.")


def test_admin_adds_a_peer_and_the_secret_is_never_shown(app, client, login_as, owner):
    admin = login_as("admin")
    users_page = client.get("/admin/users").get_data(as_text=True)
    assert 'href="/admin/peers"' in users_page
    page = client.get("/admin/peers/new").get_data(as_text=True)
    assert "North PACS &lt;north@example.test&gt;" in page
    resp = client.post("/admin/peers/new", data=_form(owner))
    assert resp.status_code == 302 and resp.location.endswith("/admin/peers")
    peer = _peer()
    assert peer.addresses == ["10.1.2.3", "10.2.0.0/16"] and peer.owner_id == owner.id
    assert peer.send_kind == "stow" and unseal(peer.stow_credentials) == SECRET
    assert peer.created_by_id == admin.id
    (event,) = _actions("peer.")
    assert event.action == "peer.created" and event.actor_id == admin.id
    assert event.details["stow_credentials"] == "set" and "Harbour" not in str(event.details)
    listing = client.get("/admin/peers").get_data(as_text=True)
    assert "CT_NORTH" in listing and "10.2.0.0/16" in listing and "north@example.test" in listing
    assert "STOW-RS https://pacs.example.org/dicom-web (credentials set)" in listing
    edit = client.get(f"/admin/peers/{peer.id}").get_data(as_text=True)
    assert "Harbour" not in edit and "sealed1:" not in edit and "stow-user" not in edit
    assert "10.1.2.3\n10.2.0.0/16" in edit and "Credentials are stored" in edit


def test_errors_keep_what_was_typed(app, client, login_as, owner):
    login_as("admin")
    resp = client.post("/admin/peers/new", data=_form(
        owner, ae_title="CT\\NORTH", addresses="10.1.2.3\n10.9.9.9/8", stow_url="ftp://x/"))
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert "holds a backslash" in page and "did you mean 10.0.0.0/8?" in page
    assert "absolute http:// or https://" in page
    assert 'value="CT\\NORTH"' in page and "10.1.2.3\n10.9.9.9/8" in page
    assert 'value="North campus"' in page
    assert '<option selected value="north@example.test">' in page
    # The secret is never written back into the page: the form asks for it again.
    assert "Harbour" not in page and "type the credentials again" in page
    bad = client.post("/admin/peers/new", data=_form(owner, stow_credentials="no-colon"))
    assert bad.status_code == 422 and "USER:PASSWORD" in bad.get_data(as_text=True)
    assert _peer() is None and not _actions("peer.")


def test_same_checks_as_the_command_line(app, client, login_as, owner):
    login_as("admin")
    assert client.post("/admin/peers/new", data=_form(owner)).status_code == 302
    dup = client.post("/admin/peers/new", data=_form(owner, ae_title="ct_north",
                                                      addresses="10.5.5.5"))
    assert dup.status_code == 422
    assert "a peer with the AE title &#39;CT_NORTH&#39; exists already" in dup.get_data(
        as_text=True)
    qa = make_user(roles=("qa_manager",), email="qa@example.test")
    _db.session.commit()
    resp = client.post("/admin/peers/new", data=_form(
        owner, ae_title="CT2", owner=qa.email, send_kind="dicom", send_host="pacs",
        send_port="99999", send_ae="PACS"))
    page = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert "does not hold the radiologist role" in page and "not between 1 and 65535" in page
    assert len(_actions("peer.created")) == 1


def test_edit_keeps_or_removes_credentials_and_is_audited(app, client, login_as, owner):
    login_as("admin")
    client.post("/admin/peers/new", data=_form(owner))
    peer = _peer()
    sealed = peer.stow_credentials
    resp = client.post(f"/admin/peers/{peer.id}", data=_form(
        owner, addresses="10.1.2.3\n2001:db8::/32", stow_credentials=""))
    assert resp.status_code == 302
    peer = _peer()
    assert peer.addresses == ["10.1.2.3", "2001:db8::/32"] and peer.stow_credentials == sealed
    change = _actions("peer.updated")[-1].details["changes"]
    assert change == {"addresses": [["10.1.2.3", "10.2.0.0/16"], ["10.1.2.3", "2001:db8::/32"]]}
    client.post(f"/admin/peers/{peer.id}", data=_form(
        owner, addresses="10.1.2.3", stow_credentials="", clear_credentials="y"))
    assert _peer().stow_credentials is None
    assert _actions("peer.updated")[-1].details["changes"]["stow_credentials"] == "removed"
    client.post(f"/admin/peers/{peer.id}", data=_form(
        owner, addresses="10.1.2.3", stow_credentials="Bearer abc.def"))
    assert unseal(_peer().stow_credentials) == "Bearer abc.def"
    client.post(f"/admin/peers/{peer.id}", data=_form(
        owner, addresses="10.1.2.3", send_kind="dicom", send_host="[::1]", send_port="11112",
        send_ae="PACS", stow_credentials=""))
    peer = _peer()
    assert (peer.send_kind, peer.send_host, peer.send_port, peer.stow_url) == (
        "dicom", "::1", 11112, "")
    assert peer.stow_credentials is None  # no STOW-RS destination: no credentials kept
    unchanged = len(_actions("peer.updated"))
    client.post(f"/admin/peers/{peer.id}", data=_form(
        owner, addresses="10.1.2.3", send_kind="dicom", send_host="::1", send_port="11112",
        send_ae="PACS", stow_url="", stow_credentials=""))
    assert len(_actions("peer.updated")) == unchanged  # nothing changed, nothing audited
    assert client.get("/admin/peers/999999").status_code == 404


def test_disable_and_enable_from_the_pages(app, client, login_as, owner):
    login_as("admin")
    client.post("/admin/peers/new", data=_form(owner))
    peer = _peer()
    assert client.post(f"/admin/peers/{peer.id}/disable").status_code == 302
    assert _peer().active is False
    assert "disabled</span>" in client.get("/admin/peers").get_data(as_text=True)
    assert client.post(f"/admin/peers/{peer.id}/enable").status_code == 302
    assert _peer().active is True
    assert [e.action for e in _actions("peer.")][-2:] == ["peer.disabled", "peer.enabled"]
    assert client.post(f"/admin/peers/{peer.id}/remove").status_code == 404
    log = client.get("/audit/").get_data(as_text=True)
    assert f'href="/admin/peers/{peer.id}"' in log and f"DICOM peer #{peer.id}" in log


@pytest.fixture
def csrf_app(tmp_path, db_url):
    app = make_test_app(tmp_path, db_url, WTF_CSRF_ENABLED=True)
    with app.app_context():
        yield app
        _db.session.remove()
        _db.engine.dispose()


def test_posts_without_a_csrf_token_are_refused(csrf_app):
    admin = make_user(roles=("admin",))
    owner = make_user(roles=("radiologist",), email="north@example.test")
    peer = DicomPeer(ae_title="CT1", addresses=["10.1.2.3"], owner_id=owner.id)
    _db.session.add(peer)
    _db.session.commit()
    client = csrf_app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    assert client.post("/login", data={"email": admin.email, "password": DEFAULT_PASSWORD,
                                       "csrf_token": token}).status_code == 302
    g.pop("csrf_token", None)
    assert client.post(f"/admin/peers/{peer.id}/disable").status_code == 400
    assert client.post("/admin/peers/new", data=_form(owner, ae_title="CT2")).status_code == 400
    assert client.post(f"/admin/peers/{peer.id}",
                       data=_form(owner, ae_title="CT1", addresses="10.9.9.9")).status_code == 400
    edit = client.get(f"/admin/peers/{peer.id}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', edit).group(1)
    assert client.post(f"/admin/peers/{peer.id}/disable",
                       data={"csrf_token": token}).status_code == 302
    _db.session.expire_all()
    assert _peer("CT1").active is False and _peer("CT1").addresses == ["10.1.2.3"]
    assert _peer("CT2") is None
    assert [e.action for e in _actions("peer.")] == ["peer.disabled"]


def _user_form(user, **over) -> dict:
    data = {"email": user.email, "full_name": user.full_name, "roles": sorted(user.role_names),
            "active": "y", "reader_id": ""}
    data.update(over)
    return data


def test_reader_identifier_on_the_account_page(app, client, login_as):
    login_as("admin")
    rad = make_user(roles=("radiologist",), email="rad@example.test")
    other = make_user(roles=("radiologist",), email="other@example.test", reader_id="RAD-1")
    rev = make_user(roles=("reviewer",), email="rev@example.test")
    _db.session.commit()
    resp = client.post(f"/admin/users/{rad.id}", data=_user_form(rad, reader_id=" 1234567893 "))
    assert resp.status_code == 302
    _db.session.expire_all()
    assert _db.session.get(User, rad.id).reader_id == "1234567893"
    page = client.get(f"/admin/users/{rad.id}").get_data(as_text=True)
    assert "<code>1234567893</code>" in page and 'value="1234567893"' in page
    dup = client.post(f"/admin/users/{rad.id}", data=_user_form(
        rad, reader_id="RAD-1", full_name="Renamed"))
    assert dup.status_code == 422
    text = dup.get_data(as_text=True)
    assert "the reader identifier RAD-1 belongs to other@example.test already" in text
    assert 'value="Renamed"' in text and 'value="RAD-1"' in text  # what was typed is kept
    _db.session.expire_all()
    assert _db.session.get(User, rad.id).full_name != "Renamed"  # nothing half-saved
    refused = client.post(f"/admin/users/{rev.id}", data=_user_form(rev, reader_id="REV-1"))
    assert refused.status_code == 422 and "only for radiologists" in refused.get_data(
        as_text=True)
    # Taking the radiologist role away while an identifier is set is refused too.
    drop = client.post(f"/admin/users/{other.id}", data=_user_form(
        other, roles=["reviewer"], reader_id="RAD-1"))
    assert drop.status_code == 422
    assert client.post(f"/admin/users/{rad.id}", data=_user_form(rad)).status_code == 302
    _db.session.expire_all()
    assert _db.session.get(User, rad.id).reader_id is None
    assert _db.session.get(User, other.id).role_names == {"radiologist"}
    events = _actions("user.reader_id")
    assert [(e.action, e.object_id, e.details["reader_id"]) for e in events] == [
        ("user.reader_id_set", str(rad.id), [None, "1234567893"]),
        ("user.reader_id_cleared", str(rad.id), ["1234567893", None]),
    ]
