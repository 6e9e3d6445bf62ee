"""Deliveries of signed results: the outbox written with the signature, the claim, retries
with backoff against a real closed loopback port, failure, manual resend, the request page;
and end to end through the real worker: destination down, failed, dcmtk's storescp started
on that port, resend, sent; an addendum sent within 5 s of its signature."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from datetime import timedelta

import pydicom
import pytest
import sqlalchemy as sa

from qaportal.dicom import generate_ct_series
from qaportal.extensions import db
from qaportal.feeds import delivery as outbox
from qaportal.jobs import queue
from qaportal.models import AuditEvent, Delivery, DicomPeer, Notification, Study, utcnow
from qaportal.opinions import service, signing
from qaportal.studies import jobs
from tests.conftest import make_test_app
from tests.factories import (
    DEFAULT_PASSWORD,
    make_certification,
    make_opinion_request,
    make_study,
    make_user,
)

FILLED = {"findings": "Small hypodensity left insula.", "impression": "Early infarct.",
          "agreement": "minor", "recommendations": "", "coverage_answer": "",
          "coverage_text": ""}
FAST_RETRIES = {"DELIVERY_MAX_ATTEMPTS": 3, "DELIVERY_RETRY_BASE_SECONDS": 0.05}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_peer(owner, ae: str, *, port: int | None = None, send_kind: str = "dicom",
              active: bool = True) -> DicomPeer:
    peer = DicomPeer(ae_title=ae, addresses=["127.0.0.1"], owner_id=owner.id, active=active,
                     send_kind=send_kind, send_host="127.0.0.1" if send_kind == "dicom" else "",
                     send_port=port if send_kind == "dicom" else None,
                     send_ae=ae if send_kind == "dicom" else "")
    db.session.add(peer)
    db.session.flush()
    return peer


@pytest.fixture
def app(tmp_path, db_url):
    """The app of every test here: retries after 0.05 s, 0.1 s, then failed."""
    app = make_test_app(tmp_path, db_url, **FAST_RETRIES)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def case(app, tmp_path):
    """A requester (the study's owner, a one-slice CT ingested as an upload would be) and a
    consultant holding the request, unsigned."""
    a = make_user(licenses=["CA"], full_name="Dr Requester")
    b = make_user(subspecialties=["neuro"], licenses=["CA"], full_name="Dr Bravo")
    make_certification(b)
    db.session.commit()
    generate_ct_series(tmp_path / "ct", slices=1, patient=("DELIVERYWREN^IDA", "PIDDLV301"))
    jobs.import_files([tmp_path / "ct"], a.id, jobs.new_batch(a, "cli").id)
    study = db.session.scalars(sa.select(Study).order_by(Study.id.desc())).first()
    study.jurisdiction = "CA"
    req = make_opinion_request(study, a, priority="urgent")
    service.claim(req, b)
    db.session.commit()
    return a, b, req


def _sign(req, b):
    signing.save_draft(req, b, FILLED)
    signing.sign(req, b, DEFAULT_PASSWORD)
    db.session.commit()


def _pending(app) -> int:
    """Delivery jobs queued (granting the study also queued its metadata's warming)."""
    return sum(t.name == "qaportal.deliver" for t in queue(app).huey.pending())


def test_the_outbox_is_written_with_the_signature_for_the_requesting_site(
        app, client, auth, case):
    a, b, req = case
    site = make_peer(a, "SITEPACS", port=closed_port())
    make_peer(a, "OFFPACS", port=closed_port(), active=False)
    make_peer(a, "NOSEND", send_kind="none")
    make_peer(b, "OTHERSITE", port=closed_port())  # not the study owner's
    db.session.commit()
    auth.login(b)
    # A refused signature writes nothing and queues nothing.
    resp = client.post(f"/opinions/{req.id}/sign", data={**FILLED, "secret": "wrong-pass"})
    assert resp.status_code == 400
    assert db.session.scalars(sa.select(Delivery)).all() == []
    assert _pending(app) == 0

    resp = client.post(f"/opinions/{req.id}/sign", data={**FILLED, "secret": DEFAULT_PASSWORD})
    assert resp.status_code == 302
    rows = db.session.scalars(sa.select(Delivery)).all()
    assert [(r.peer_id, r.addendum_id, r.status, r.attempts) for r in rows] == [
        (site.id, None, "queued", 0)]
    assert _pending(app) == 1  # queued once the signature committed
    event = db.session.scalar(sa.select(AuditEvent).where(
        AuditEvent.action == "delivery.queued"))
    assert event.details == {"delivery_id": rows[0].id, "peer": "SITEPACS",
                             "object": "opinion"}

    resp = client.post(f"/opinions/{req.id}/addenda",
                       data={"text": "Also a small bleed.", "secret": DEFAULT_PASSWORD})
    assert resp.status_code == 302
    rows = db.session.scalars(sa.select(Delivery).order_by(Delivery.id)).all()
    assert len(rows) == 2 and rows[1].addendum_id == req.opinion.addenda[0].id
    assert _pending(app) == 2


def test_a_signature_rolled_back_leaves_no_delivery_and_queues_no_job(app, case):
    a, b, req = case
    make_peer(a, "SITEPACS", port=closed_port())
    db.session.commit()
    signing.save_draft(req, b, FILLED)
    signing.sign(req, b, DEFAULT_PASSWORD)
    assert db.session.scalar(sa.select(sa.func.count(Delivery.id))) == 1  # in the transaction
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count(Delivery.id))) == 0
    db.session.commit()
    assert _pending(app) == 0


def test_retries_back_off_then_fail_with_the_reason_then_resend(app, client, auth, case):
    a, b, req = case
    make_peer(a, "SITEPACS", port=closed_port())
    db.session.commit()
    _sign(req, b)
    (row,) = db.session.scalars(sa.select(Delivery)).all()

    assert [outbox.retry_delay(n) for n in (1, 2, 3)] == [0.05, 0.1, 0.2]
    app.config["DELIVERY_RETRY_MAX_SECONDS"] = 0.15
    assert outbox.retry_delay(3) == 0.15  # capped
    # The first retry waits a minute, so that "not due yet" holds however slow the machine.
    app.config.update(DELIVERY_RETRY_BASE_SECONDS=60.0, DELIVERY_RETRY_MAX_SECONDS=3600.0)
    outbox.attempt(row.id)
    db.session.expire_all()
    assert (row.status, row.attempts) == ("queued", 1)
    assert (row.peer_status, row.last_error) == ("no connection", row.last_error)
    assert "refused" in row.last_error.lower()
    assert 60 <= (row.next_attempt_at - row.last_attempt_at).total_seconds() < 600
    outbox.attempt(row.id)  # not due yet: nothing happens
    db.session.expire_all()
    assert row.attempts == 1
    app.config.update(DELIVERY_RETRY_BASE_SECONDS=0.05, DELIVERY_RETRY_MAX_SECONDS=0.15)
    db.session.execute(sa.update(Delivery).where(Delivery.id == row.id)
                       .values(next_attempt_at=utcnow()))  # the minute has passed
    db.session.commit()

    for number in (2, 3):
        time.sleep(max(0.0, (row.next_attempt_at - utcnow()).total_seconds()))
        outbox.attempt(row.id)
        db.session.expire_all()
        assert row.attempts == number
    assert (row.status, row.next_attempt_at, row.peer_status) == ("failed", None,
                                                                  "no connection")
    assert "refused" in row.last_error.lower()
    attempts = db.session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "delivery.attempt").order_by(AuditEvent.seq)).all()
    assert [(e.details["attempt"], e.details["ok"], e.details["outcome"]) for e in attempts] == [
        (1, False, "queued"), (2, False, "queued"), (3, False, "failed")]
    assert all(e.object_id == str(req.id) and e.actor_label == "worker" for e in attempts)
    assert db.session.scalar(sa.select(Notification).where(
        Notification.user_id == a.id, Notification.kind == "delivery.failed"))

    # The request page says so, to the requester; a resend queues it again.
    auth.login(a)
    page = client.get(f"/opinions/{req.id}").get_data(as_text=True)
    assert 'id="deliveries"' in page and "SITEPACS" in page
    assert f'id="delivery-{row.id}" data-status="failed"' in page
    assert "peer status no connection" in page and f'id="resend-{row.id}"' in page
    resp = client.post(f"/opinions/{req.id}/deliveries/{row.id}/resend")
    assert resp.status_code == 302
    db.session.expire_all()
    assert (row.status, row.attempts) == ("queued", 0)
    assert db.session.scalar(sa.select(AuditEvent).where(
        AuditEvent.action == "delivery.resend")).actor_id == a.id
    # Queued again: a second click changes nothing.
    client.post(f"/opinions/{req.id}/deliveries/{row.id}/resend")
    assert db.session.scalar(sa.select(sa.func.count(AuditEvent.id)).where(
        AuditEvent.action == "delivery.resend")) == 1


def test_who_may_resend(app, client, auth, case):
    a, b, req = case
    make_peer(a, "SITEPACS", port=closed_port())
    db.session.commit()
    _sign(req, b)
    (row,) = db.session.scalars(sa.select(Delivery)).all()
    row.status = "failed"
    qa = make_user(roles=("qa_manager",))
    stranger = make_user(subspecialties=["neuro"], licenses=["CA"])
    db.session.commit()
    url = f"/opinions/{req.id}/deliveries/{row.id}/resend"
    auth.login(b)  # the consultant sees the request, but the result is not theirs to send
    assert client.post(url).status_code == 403
    page = client.get(f"/opinions/{req.id}").get_data(as_text=True)
    assert "SITEPACS" in page and f'id="resend-{row.id}"' not in page
    auth.logout()
    auth.login(stranger)
    assert client.post(url).status_code == 404
    auth.logout()
    auth.login(qa)
    assert client.post(f"/opinions/{req.id}/deliveries/{row.id + 99}/resend"
                       ).status_code == 404
    assert client.post(url).status_code == 302
    db.session.expire_all()
    assert row.status == "queued"


def test_resend_needs_the_csrf_token(tmp_path, db_url):
    app = make_test_app(tmp_path, db_url, WTF_CSRF_ENABLED=True)
    with app.app_context():
        a = make_user(licenses=["CA"])
        b = make_user(subspecialties=["neuro"], licenses=["CA"])
        make_certification(b)
        req = make_opinion_request(make_study(a), a)
        service.claim(req, b)
        make_peer(a, "SITEPACS", port=closed_port())
        db.session.commit()
        _sign(req, b)
        (row,) = db.session.scalars(sa.select(Delivery)).all()
        row.status = "failed"
        db.session.commit()
        client = app.test_client()
        from tests.test_opinions_csrf import _login

        _login(client, a)
        resp = client.post(f"/opinions/{req.id}/deliveries/{row.id}/resend")
        assert resp.status_code == 400
        db.session.expire_all()
        assert row.status == "failed"
        db.session.remove()
        db.engine.dispose()


def test_two_workers_never_claim_the_same_delivery(app, case):
    a, b, req = case
    make_peer(a, "SITEPACS", port=closed_port())
    db.session.commit()
    _sign(req, b)
    (row,) = db.session.scalars(sa.select(Delivery)).all()
    barrier = threading.Barrier(4)
    won = []

    def worker():
        with app.app_context():
            barrier.wait()
            won.append(outbox.claim(row.id))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(won, key=lambda n: n or 0) == [None, None, None, 1]
    db.session.expire_all()
    assert (row.status, row.attempts) == ("sending", 1)


def test_the_sweep_takes_back_lost_attempts_and_queues_due_deliveries(app, case):
    a, b, req = case
    make_peer(a, "SITEPACS", port=closed_port())
    make_peer(a, "SECONDPACS", port=closed_port())
    db.session.commit()
    _sign(req, b)
    queue(app).huey.flush()  # the jobs queued at signing are lost
    first, second = db.session.scalars(sa.select(Delivery).order_by(Delivery.id)).all()
    past = utcnow() - timedelta(seconds=1)
    first.status, first.attempts, first.next_attempt_at = "sending", 1, past  # lease over
    second.status, second.attempts, second.next_attempt_at = "sending", 3, past  # the last
    db.session.commit()
    assert outbox.sweep() == 1
    db.session.expire_all()
    assert (first.status, first.attempts) == ("queued", 1)
    assert "did not finish" in first.last_error
    assert (second.status, second.next_attempt_at) == ("failed", None)
    assert _pending(app) == 1
    # Nothing due: nothing queued.
    first.next_attempt_at = utcnow() + timedelta(minutes=5)
    db.session.commit()
    assert outbox.sweep() == 0


def test_the_page_shows_a_sent_delivery(app, client, auth, case):
    a, b, req = case
    make_peer(a, "SITEPACS", port=closed_port())
    db.session.commit()
    _sign(req, b)
    (row,) = db.session.scalars(sa.select(Delivery)).all()
    row.status, row.sent_at, row.sop_instance_uids = "sent", utcnow(), ["1.2.3", "1.2.4"]
    row.peer_status = "0x0000"
    db.session.commit()
    auth.login(a)
    page = client.get(f"/opinions/{req.id}").get_data(as_text=True)
    assert 'data-status="sent"' in page and "2 object(s)" in page
    assert f'id="resend-{row.id}"' in page


def _storescp(port: int, folder) -> subprocess.Popen:
    """dcmtk's Storage SCP on a loopback port, writing what it receives to folder."""
    return subprocess.Popen(["/usr/bin/storescp", "--aetitle", "SITEPACS", "--output-directory",
                             str(folder), "+xa", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _received(folder) -> dict[str, pydicom.Dataset]:
    found = {}
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        found[str(ds.SOPInstanceUID)] = ds
    return found


# About 15 s: the worker process starts, and renders two case packets (PDF) in subprocesses.
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("/usr/bin/storescp") is None,
                    reason="dcmtk's storescp is not installed (make system-deps-test)")
def test_down_then_failed_then_resent_to_a_live_peer_and_sent_within_5_s_of_signing(
        app, client, auth, case, tmp_path):
    from tests.test_jobs_queue import start_worker, wait_for, wait_until_up

    a, b, req = case
    port = closed_port()
    make_peer(a, "SITEPACS", port=port)
    db.session.commit()
    received = tmp_path / "received"
    received.mkdir()
    proc, log = start_worker(app, "--workers", "2")
    peer = None
    try:
        wait_until_up(proc, log)
        _sign(req, b)  # the destination is down: three attempts, then failed
        (row,) = db.session.scalars(sa.select(Delivery)).all()
        wait_for(lambda: db.session.get(Delivery, row.id).status == "failed", proc, log, 60)
        row = db.session.get(Delivery, row.id)
        assert (row.attempts, row.peer_status) == (3, "no connection")
        assert "refused" in row.last_error.lower() and str(port) in row.last_error

        peer = _storescp(port, received)  # the site's PACS is back
        auth.login(a)
        assert client.post(f"/opinions/{req.id}/deliveries/{row.id}/resend").status_code == 302
        wait_for(lambda: db.session.get(Delivery, row.id).status == "sent", proc, log)
        row = db.session.get(Delivery, row.id)
        assert row.attempts == 1 and row.peer_status == "0x0000" and row.sent_at
        got = _received(received)
        assert set(got) == set(row.sop_instance_uids) and len(got) == 2
        assert {ds.StudyInstanceUID for ds in got.values()} == {req.study.study_uid}
        page = client.get(f"/opinions/{req.id}").get_data(as_text=True)
        assert f'id="delivery-{row.id}" data-status="sent"' in page

        # With the peer up, a signed addendum reaches it on its own (benchmarks/delivery.py
        # measures how fast, target 5 s).
        signing.add_addendum(req, b, "The prior shows no change.", DEFAULT_PASSWORD)
        db.session.commit()
        wait_for(lambda: db.session.scalar(sa.select(sa.func.count(Delivery.id)).where(
            Delivery.status == "sent")) == 2, proc, log)
        addendum_row = db.session.scalars(sa.select(Delivery).where(
            Delivery.addendum_id.is_not(None))).one()
        got = _received(received)
        assert set(addendum_row.sop_instance_uids) <= set(got) and len(got) == 4
        oks = db.session.scalars(sa.select(AuditEvent).where(
            AuditEvent.action == "delivery.attempt")).all()
        assert [e.details["ok"] for e in oks] == [False, False, False, True, True]
        assert not any("DELIVERYWREN" in str(e.details) or "PIDDLV301" in str(e.details)
                       for e in oks)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
        if peer is not None:
            peer.terminate()
            peer.wait(timeout=10)
