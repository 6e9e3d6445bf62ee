"""A STOW-RS request by API token: its `api_token.used` entry is written in the request's
own transaction (one commit), and a request that does not commit
still has it, committed after the response, with the same details as before."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

import pydicom
import sqlalchemy as sa
from flask import g
from pydicom.uid import generate_uid
from sqlalchemy.orm import Session

from qaportal import audit
from qaportal.auth import tokens
from qaportal.extensions import db
from qaportal.models import ApiToken, AuditEvent, Instance, UploadBatch
from tests.factories import make_user
from tests.studyfiles import sample
from tests.test_dicomweb_stow import CT, URL, count, related, stow


def _token(roles=("radiologist",)) -> tuple[ApiToken, str]:
    user = make_user(roles=roles)
    made = tokens.create(user, label="pacs", scopes=("read", "write"), expires_days=None,
                         by=user)
    db.session.commit()
    return made.token, made.secret


@contextmanager
def _commits() -> Iterator[list[int]]:
    """Count the commits of the database session while the block runs."""
    seen: list[int] = []

    def count_one(session):
        seen.append(1)

    sa.event.listen(Session, "after_commit", count_one)
    try:
        yield seen
    finally:
        sa.event.remove(Session, "after_commit", count_one)


def _entries() -> list[AuditEvent]:
    return list(db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq)))


def _used(token: ApiToken) -> list[dict]:
    return [e.details for e in _entries()
            if e.action == "api_token.used" and e.object_id == str(token.id)]


def test_a_stored_request_commits_its_token_use_with_its_rows(app, client):
    token, secret = _token()
    seq = len(_entries())
    with _commits() as commits:
        r = stow(client, [sample("CT_small.dcm").read_bytes()],
                 Authorization=f"Bearer {secret}")
    assert r.status_code == 200
    assert count(Instance) == 1
    added = _entries()[seq:]
    assert sorted(e.action for e in added) == [
        "api_token.used", "study.created", "study.files_ingested", "study.upload_finished"]
    assert _used(token) == [{"method": "POST", "endpoint": "dicomweb.stow_studies"}]
    assert {e.actor_id for e in added} == {token.user_id}
    assert len(commits) == 1  # the use, the rows and the other entries: one transaction
    assert db.session.get(ApiToken, token.id).last_used_at is not None
    assert audit.verify().ok


def test_a_refused_or_failed_request_still_audits_the_use(app, client):
    token, secret = _token()
    bearer = {"Authorization": f"Bearer {secret}"}
    ct = sample("CT_small.dcm").read_bytes()
    cut = related([ct], close=False)
    assert client.post(URL, data=cut, headers={"Content-Type": CT, **bearer}).status_code == 400
    assert client.post(URL, data=b"x", headers={"Content-Type": "application/dicom",
                                                **bearer}).status_code == 415
    assert client.post(URL + "/1.2.3", data=related([ct]),
                       headers={"Content-Type": CT, **bearer}).status_code == 409
    assert count(Instance) == 0
    assert _used(token) == [{"method": "POST", "endpoint": e} for e in
                            ("dicomweb.stow_studies", "dicomweb.stow_studies",
                             "dicomweb.stow_study")]
    assert count(UploadBatch) == 1  # the 409: nothing stored, the batch says why
    assert db.session.get(ApiToken, token.id).last_used_at is not None
    assert audit.verify().ok


def test_a_token_of_a_role_that_may_not_store_is_audited(app, client):
    token, secret = _token(roles=("reviewer",))
    r = stow(client, [sample("CT_small.dcm").read_bytes()], Authorization=f"Bearer {secret}")
    assert r.status_code == 403
    assert _used(token) == [{"method": "POST", "endpoint": "dicomweb.stow_studies"}]
    assert count(UploadBatch) == 0


def test_a_session_request_records_no_token_use(app, client, login_as):
    login_as("radiologist")
    assert stow(client, [sample("CT_small.dcm").read_bytes()]).status_code == 200
    assert [e for e in _entries() if e.action == "api_token.used"] == []


def test_the_use_is_recorded_once_per_transaction_and_again_after_a_rollback(app):
    token, secret = _token()
    with app.test_request_context(URL, method="POST",
                                  headers={"Authorization": f"Bearer {secret}"}):
        assert tokens.authenticate_bearer() is None
        assert g.token_use_pending
        seq = len(_entries())
        tokens.record_use()
        tokens.record_use()  # the same transaction holds it already
        db.session.flush()
        assert len(_entries()) == seq + 1
        db.session.rollback()  # as a transaction retried after a lost race
        assert len(_entries()) == seq
        tokens.record_use()
        db.session.commit()
        assert "token_use_pending" not in g  # committed: nothing left for after the response
        assert len(_used(token)) == 1
        tokens.audit_pending_use(app.response_class())
        assert len(_used(token)) == 1


def test_a_request_that_fails_on_the_server_audits_the_use_once(app, client, tmp_path):
    """A real fault (the image store's folder cannot be made): a 500, no row, the use
    recorded and committed after the response."""
    token, secret = _token()
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    app.config["IMAGE_ROOT"] = str(blocker / "images")
    app.extensions.pop("qaportal_image_store", None)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: an error page, not a raise
    r = stow(client, [sample("CT_small.dcm").read_bytes()], Authorization=f"Bearer {secret}")
    assert r.status_code == 500
    assert count(UploadBatch) == 0 and count(Instance) == 0
    assert _used(token) == [{"method": "POST", "endpoint": "dicomweb.stow_studies"}]
    assert audit.verify().ok


@contextmanager
def _statements() -> Iterator[list[str]]:
    """Collect the SQL statements sent while the block runs."""
    sent: list[str] = []

    def seen(conn, cursor, statement, *args):
        sent.append(" ".join(statement.split()).upper())

    sa.event.listen(db.engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", seen)


def test_a_stored_request_chains_its_entries_in_one_write(app, client):
    """The request's entries go into the chain together, last, in the order they arose:
    one update of the chain's head takes their numbers, one more names the last; the
    batch is inserted finished and updated once, with its totals."""
    token, secret = _token()
    first = sample("CT_small.dcm").read_bytes()
    for attempt in range(2):  # a new study, then a known one (nothing created)
        seq = len(_entries())
        with _statements() as sent:
            r = stow(client, [first if attempt == 0 else _other_instance(first)],
                     Authorization=f"Bearer {secret}")
        assert r.status_code == 200
        assert sum(s.startswith("UPDATE AUDIT_HEAD") for s in sent) == 2
        assert sum(s.startswith("INSERT INTO AUDIT_EVENTS") for s in sent) == 1
        assert sum(s.startswith("UPDATE UPLOAD_BATCHES") for s in sent) == 1
        added = _entries()[seq:]
        assert [e.action for e in added] == ["study.created"] * (attempt == 0) + [
            "study.files_ingested", "api_token.used", "study.upload_finished"]
        assert [e.seq for e in added] == list(range(seq + 1, seq + 1 + len(added)))
        assert db.session.scalars(sa.select(UploadBatch).order_by(UploadBatch.id.desc())
                                  ).first().finished_at is not None
    assert count(Instance) == 2
    assert audit.verify().ok


def _other_instance(data: bytes) -> bytes:
    """The same study and series, another SOP Instance UID."""
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
