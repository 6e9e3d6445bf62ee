"""How a token's use is audited on the per-frame routes of DICOMweb: like the viewer's frames,
once per series (the series entry names the token), a failed request on its own, and never
a database write per frame for last_used_at."""

from __future__ import annotations

import sqlalchemy as sa

from qaportal.auth import tokens
from qaportal.extensions import db
from qaportal.models import ApiToken, AuditEvent, utcnow
from tests.factories import make_user
from tests.test_dicomweb_frames import data_file, first_instance, ingest, instance_url


def _actions(*names: str) -> list[AuditEvent]:
    return list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action.in_(names))
                                   .order_by(AuditEvent.seq)))


def _token(owner) -> tuple[ApiToken, str]:
    made = tokens.create(owner, label="PACS", scopes=("read",), expires_days=30, by=owner)
    db.session.commit()
    return made.token, made.secret


def test_frames_by_token_are_one_series_entry_naming_the_token(app, client):
    owner = make_user(roles=("radiologist",))
    db.session.commit()
    study = ingest(owner, data_file("CT_small.dcm"))
    inst = first_instance(study)
    token, secret = _token(owner)
    bearer = {"Authorization": f"Bearer {secret}"}
    base = instance_url(study, inst)
    for suffix in ("/frames/1", "/frames/1/rendered", "/rendered", "/thumbnail",
                   "/frames/1", "/bulkdata/7FE00010"):
        assert client.get(base + suffix, headers=bearer).status_code == 200, suffix
    viewed = _actions("study.series_viewed")
    assert [(e.actor_id, e.details["token_id"]) for e in viewed] == [(owner.id, token.id)]
    assert _actions("api_token.used") == []  # covered by the series entry
    # The metadata of the series is not a per-frame read: its use is an entry of its own.
    series_url = base.rsplit("/instances/", 1)[0] + "/metadata"
    assert client.get(series_url, headers=bearer).status_code == 200
    used = _actions("api_token.used")
    assert [(e.details["endpoint"], e.details.get("status")) for e in used] == [
        ("dicomweb.series_metadata", None)]


def test_a_failed_per_frame_request_by_token_is_audited(app, client):
    owner = make_user(roles=("radiologist",))
    db.session.commit()
    study = ingest(owner, data_file("CT_small.dcm"))
    inst = first_instance(study)
    token, secret = _token(owner)
    bearer = {"Authorization": f"Bearer {secret}"}
    missing = instance_url(study, inst).replace(inst.sop_uid, inst.sop_uid + ".9")
    assert client.get(missing + "/frames/1", headers=bearer).status_code == 404
    assert client.get(instance_url(study, inst) + "/frames/0",
                      headers=bearer).status_code == 400
    used = _actions("api_token.used")
    assert [(e.actor_id, e.details["endpoint"], e.details["status"]) for e in used] == [
        (owner.id, "dicomweb.retrieve_frames", 404), (owner.id, "dicomweb.retrieve_frames", 400)]
    assert _actions("study.series_viewed") == []


def test_last_used_is_written_at_most_once_a_minute(app, client):
    owner = make_user(roles=("radiologist",))
    db.session.commit()
    study = ingest(owner, data_file("CT_small.dcm"))
    url = instance_url(study, first_instance(study)) + "/frames/1"
    token, secret = _token(owner)
    assert token.last_used_at is None
    assert client.get(url, headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    first = db.session.get(ApiToken, token.id).last_used_at
    assert first is not None
    db.session.expire_all()
    assert client.get(url, headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    assert db.session.get(ApiToken, token.id).last_used_at == first
    # An hour later it is written again.
    db.session.execute(sa.update(ApiToken).where(ApiToken.id == token.id)
                       .values(last_used_at=first - tokens.LAST_USED_EVERY * 60))
    db.session.commit()
    assert client.get(url, headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    db.session.expire_all()
    assert db.session.get(ApiToken, token.id).last_used_at > first - tokens.LAST_USED_EVERY
    assert db.session.get(ApiToken, token.id).last_used_at <= utcnow()
