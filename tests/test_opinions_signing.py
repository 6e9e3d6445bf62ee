"""The opinion: autosaved drafts, signature, immutability, addenda, turnaround."""

from __future__ import annotations

from datetime import date, timedelta

import pyotp
import pytest
import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import AuditEvent, Notification, Opinion, OpinionAddendum, OpinionRequest
from qaportal.opinions import service, signing
from qaportal.opinions.sla import turnaround_stats
from tests.factories import (
    DEFAULT_PASSWORD,
    make_certification,
    make_opinion_request,
    make_study,
    make_user,
)

FILLED = {"findings": "Small hypodensity left insula.", "impression": "Early infarct.",
          "agreement": "minor", "recommendations": "MRI with DWI.",
          "coverage_answer": "", "coverage_text": ""}


@pytest.fixture
def case(app):
    a = make_user(licenses=["CA"], full_name="Dr Requester")
    b = make_user(subspecialties=["neuro"], licenses=["CA"], full_name="Dr Bravo")
    make_certification(b)
    req = make_opinion_request(make_study(a), a, priority="urgent")
    service.claim(req, b)
    db.session.commit()
    return a, b, req


def test_autosave_json_endpoint_saves_draft(client, auth, case):
    a, b, req = case
    auth.login(b)
    resp = client.post(f"/opinions/{req.id}/draft", json={"findings": "typed so far",
                                                          "agreement": "agree", "bogus": "x"})
    assert resp.status_code == 200 and resp.get_json()["saved_at"]
    op = db.session.scalar(sa.select(Opinion))
    assert op.findings == "typed so far" and op.agreement == "agree" and op.signed_at is None
    assert client.post(f"/opinions/{req.id}/draft", data="nope",
                       content_type="application/json").status_code == 400
    page = client.get(f"/opinions/{req.id}/opinion").get_data(as_text=True)
    assert "typed so far" in page and "data-autosave-url" in page
    auth.logout()
    auth.login(a)
    assert client.post(f"/opinions/{req.id}/draft", json={"findings": "x"}).status_code == 403


def test_save_draft_button(client, auth, case):
    _, b, req = case
    auth.login(b)
    resp = client.post(f"/opinions/{req.id}/opinion", data=FILLED)
    assert resp.status_code == 302
    assert db.session.scalar(sa.select(Opinion.impression)) == "Early infarct."


def test_sign_requires_password_and_content(client, auth, case):
    a, b, req = case
    auth.login(b)
    resp = client.post(f"/opinions/{req.id}/sign", data={**FILLED, "impression": "",
                                                         "secret": DEFAULT_PASSWORD})
    assert resp.status_code == 400 and "impression" in resp.get_data(as_text=True)
    resp = client.post(f"/opinions/{req.id}/sign", data={**FILLED, "secret": "wrong-password"})
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert "not correct" in page and "Small hypodensity left insula." in page
    assert db.session.scalar(sa.select(Opinion.signed_at)) is None
    assert db.session.scalar(sa.select(AuditEvent).where(
        AuditEvent.action == "opinion.signature_refused")) is not None
    resp = client.post(f"/opinions/{req.id}/sign", data={**FILLED, "secret": DEFAULT_PASSWORD})
    assert resp.status_code == 302
    db.session.expire_all()
    req = db.session.get(OpinionRequest, req.id)
    op = req.opinion
    assert req.status == "signed" and op.signed_at and op.signature_method == "password"
    assert op.signer_name == "Dr Bravo"
    assert "American Board of Radiology" in op.signer_credentials
    assert (op.license_jurisdiction, op.license_number) == ("CA", b.licenses[0].number)
    assert req.turnaround_minutes is not None and req.turnaround_minutes >= 0
    assert db.session.scalar(sa.select(Notification).where(
        Notification.user_id == a.id, Notification.kind == "opinion.signed"))
    # The requester reads it with the signer's credentials and licence.
    auth.logout()
    auth.login(a)
    page = client.get(f"/opinions/{req.id}").get_data(as_text=True)
    assert "Early infarct." in page and "Dr Bravo" in page and b.licenses[0].number in page
    assert "Minor disagreement" in page


def test_sign_with_totp(app, case):
    _, b, req = case
    b.totp_secret = pyotp.random_base32()
    b.totp_enabled = True
    signing.save_draft(req, b, FILLED)
    with pytest.raises(signing.SignatureRefused):
        signing.sign(req, b, "000000" if pyotp.TOTP(b.totp_secret).now() != "000000"
                     else "111111")
    op = signing.sign(req, b, pyotp.TOTP(b.totp_secret).now())
    assert op.signature_method == "totp"


def test_signing_rechecks_licence(app, case):
    _, b, req = case
    signing.save_draft(req, b, FILLED)
    lic = b.licenses[0]
    lic.valid_from = date.today() - timedelta(days=300)
    lic.valid_to = date.today() - timedelta(days=1)  # expired since the claim
    db.session.flush()
    with pytest.raises(service.OpinionError, match="no active licence for CA"):
        signing.sign(req, b, DEFAULT_PASSWORD)
    assert req.opinion.signed_at is None


def test_coverage_review_needs_criteria_answer(app):
    a = make_user(licenses=["CA"])
    b = make_user(subspecialties=["msk"], licenses=["CA"])
    req = make_opinion_request(make_study(a), a, pool="msk", request_type="coverage_review",
                               criteria="Tear meeting arthroscopy criteria?")
    service.claim(req, b)
    signing.save_draft(req, b, FILLED)
    with pytest.raises(service.OpinionError, match="coverage"):
        signing.sign(req, b, DEFAULT_PASSWORD)
    signing.save_draft(req, b, {"coverage_answer": "supported",
                                "coverage_text": "Complex tear of the posterior horn."})
    assert signing.sign(req, b, DEFAULT_PASSWORD).coverage_answer == "supported"


def test_signed_opinion_is_immutable(client, auth, case):
    _, b, req = case
    signing.save_draft(req, b, FILLED)
    signing.sign(req, b, DEFAULT_PASSWORD)
    db.session.commit()
    # The service refuses.
    with pytest.raises(service.OpinionError):
        signing.save_draft(req, b, {"findings": "changed"})
    with pytest.raises(service.OpinionError):
        signing.sign(req, b, DEFAULT_PASSWORD)
    # The web refuses.
    auth.login(b)
    assert client.post(f"/opinions/{req.id}/draft", json={"findings": "x"}).status_code == 403
    assert client.post(f"/opinions/{req.id}/opinion", data=FILLED).status_code == 403
    # The database refuses, whatever the code does.
    with pytest.raises(sa.exc.DBAPIError):
        db.session.execute(sa.update(Opinion).values(findings="tampered"))
        db.session.flush()
    db.session.rollback()
    with pytest.raises(sa.exc.DBAPIError):
        db.session.execute(sa.delete(Opinion))
    db.session.rollback()
    assert db.session.scalar(sa.select(Opinion.findings)) == FILLED["findings"]


def test_addendum_signed_and_immutable(client, auth, case):
    a, b, req = case
    signing.save_draft(req, b, FILLED)
    signing.sign(req, b, DEFAULT_PASSWORD)
    db.session.commit()
    with pytest.raises(service.OpinionError, match="signer"):
        signing.add_addendum(req, a, "mine", DEFAULT_PASSWORD)
    auth.login(b)
    resp = client.post(f"/opinions/{req.id}/addenda", data={"text": "Later note", "secret": "no"})
    assert resp.status_code == 400 and "Later note" in resp.get_data(as_text=True)
    resp = client.post(f"/opinions/{req.id}/addenda",
                       data={"text": "Compared with priors: stable.", "secret": DEFAULT_PASSWORD})
    assert resp.status_code == 302
    add = db.session.scalar(sa.select(OpinionAddendum))
    assert add.signed_at and add.license_jurisdiction == "CA" and add.signer_name == "Dr Bravo"
    page = client.get(f"/opinions/{req.id}").get_data(as_text=True)
    assert "Addendum 1" in page and "Compared with priors: stable." in page
    with pytest.raises(sa.exc.DBAPIError):
        db.session.execute(sa.update(OpinionAddendum).values(text="tampered"))
    db.session.rollback()


def test_consultant_first_view_and_turnaround_stats(client, auth, case):
    _, b, req = case
    auth.login(b)
    client.get(f"/opinions/{req.id}")
    db.session.refresh(req)
    first = req.first_viewed_at
    assert first is not None
    client.get(f"/opinions/{req.id}")
    db.session.refresh(req)
    assert req.first_viewed_at == first
    req.requested_at -= timedelta(minutes=90)
    req.due_at -= timedelta(minutes=90)
    signing.save_draft(req, b, FILLED)
    signing.sign(req, b, DEFAULT_PASSWORD)
    assert 89 <= req.turnaround_minutes <= 91
    stats = turnaround_stats(db.session.scalars(sa.select(OpinionRequest)).all())
    assert stats.count == 1 and stats.within_target == 1
    assert stats.by_priority["urgent"]["count"] == 1
    assert stats.by_priority["stat"]["count"] == 0


def test_repeated_wrong_signatures_lock_the_account_and_end_the_session(client, auth, case, app):
    _, b, req = case
    auth.login(b)
    threshold = app.config["LOCKOUT_THRESHOLD"]
    for _ in range(threshold - 1):
        resp = client.post(f"/opinions/{req.id}/sign", data={**FILLED, "secret": "wrong-one"})
        assert resp.status_code == 400
    resp = client.post(f"/opinions/{req.id}/sign", data={**FILLED, "secret": "wrong-one"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/login")
    db.session.expire_all()
    assert db.session.get(type(b), b.id).locked_until is not None
    assert db.session.scalar(sa.select(AuditEvent).where(
        AuditEvent.action == "auth.lockout", AuditEvent.object_id == str(b.id))) is not None
    assert client.get(f"/opinions/{req.id}/opinion").status_code == 302  # signed out
    assert auth.login(b).status_code == 401  # locked, even with the right password
    assert db.session.scalar(sa.select(Opinion.signed_at)) is None
