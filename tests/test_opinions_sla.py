"""Deadlines: the sla-check command, escalation idempotency, e-mails, the bell."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import Notification, OpinionRequest
from qaportal.opinions import service
from qaportal.opinions.sla import sla_state
from tests.factories import make_opinion_request, make_study, make_user


def _age(req: OpinionRequest, hours: float) -> None:
    req.requested_at -= timedelta(hours=hours)
    req.due_at -= timedelta(hours=hours)


def _setup():
    a = make_user(licenses=["CA"], full_name="Dr Requester")
    b = make_user(subspecialties=["neuro"], licenses=["CA"])
    c = make_user(subspecialties=["neuro"], licenses=["CA"])
    qa = make_user(roles=("qa_manager",))
    study = make_study(a, patient_name="ZZMAILPLANT^SECRET")
    study.patient_id = "PIDMAIL42"
    study.accession_number = "ACCMAIL77"
    return a, b, c, qa, study


def _run(app):
    result = app.test_cli_runner().invoke(args=["sla-check"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    return lines[0]


def _notes(kind):
    return db.session.execute(sa.select(Notification.user_id).where(
        Notification.kind == kind)).scalars().all()


def test_approaching_deadline_notifies_pool_once(app):
    a, b, c, qa, study = _setup()
    req = make_opinion_request(study, a, priority="routine")
    _age(req, 40)  # 8 of 48 hours left: under 25 %
    db.session.commit()
    assert sla_state(req) == "approaching"
    line = _run(app)
    assert "1 approaching" in line and "2 notification(s)" in line
    assert sorted(_notes("opinion.deadline")) == sorted([b.id, c.id])
    assert "0 notification(s)" in _run(app)
    assert len(_notes("opinion.deadline")) == 2
    # Once claimed, the consultant is the one warned (already warned: nothing new).
    service.claim(db.session.get(OpinionRequest, req.id), b)
    db.session.commit()
    assert "0 notification(s)" in _run(app)


def test_breach_escalates_to_qa_and_requester_once(app):
    a, b, c, qa, study = _setup()
    req = make_opinion_request(study, a, priority="stat")
    service.claim(req, b)
    fresh = make_opinion_request(make_study(a), a, priority="routine")
    _age(req, 2)
    db.session.commit()
    line = _run(app)
    assert line.startswith("sla-check: 2 active, 0 approaching, 1 overdue")
    assert sorted(_notes("opinion.breach")) == sorted([a.id, b.id, qa.id])
    db.session.expire_all()
    breached = db.session.get(OpinionRequest, req.id).breached_at
    assert breached is not None
    for _ in range(2):
        assert "0 notification(s)" in _run(app)
    db.session.expire_all()
    assert len(_notes("opinion.breach")) == 3
    assert db.session.get(OpinionRequest, req.id).breached_at == breached
    assert sla_state(db.session.get(OpinionRequest, fresh.id)) == "ok"


def test_emails_carry_no_patient_identifiers(app):
    a, b, c, qa, study = _setup()
    req = make_opinion_request(study, a, priority="stat", question="Bleed?")
    service.claim(req, b)
    service.post_message(req, b, "Question about ZZ?")
    _age(req, 2)
    db.session.commit()
    _run(app)
    files = list(Path(app.config["OUTBOX_DIR"]).glob("*.eml"))
    assert len(files) >= 5
    for f in files:
        text = f.read_text()
        for secret in ("ZZMAILPLANT", "SECRET", "PIDMAIL42", "ACCMAIL77"):
            assert secret not in text, f.name
        assert f"/opinions/{req.id}" in text


def test_bell_count_list_and_open_marks_read(client, auth, app):
    a, b, c, qa, study = _setup()
    req = make_opinion_request(study, a)
    db.session.commit()
    auth.login(b)
    page = client.get("/").get_data(as_text=True)
    assert 'id="bell-count">1<' in page
    listing = client.get("/notifications/").get_data(as_text=True)
    assert f"request #{req.id}" in listing
    note = db.session.scalar(sa.select(Notification).where(Notification.user_id == b.id))
    resp = client.post(f"/notifications/{note.id}/open")
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/opinions/{req.id}")
    assert 'id="bell-count"' not in client.get("/").get_data(as_text=True)
    # Someone else's notification is not found.
    other = db.session.scalar(sa.select(Notification).where(Notification.user_id == c.id))
    assert client.post(f"/notifications/{other.id}/open").status_code == 404
    client.post("/notifications/read-all")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification).where(
        Notification.user_id == b.id, Notification.read_at.is_(None))) == 0


def test_approaching_deadline_warns_the_assigned_consultant_once(app):
    a, b, c, qa, study = _setup()
    d = make_user(subspecialties=["neuro"], licenses=["CA"])
    claimed = make_opinion_request(study, a, priority="routine")
    service.claim(claimed, c)
    named = make_opinion_request(make_study(a), a, priority="urgent", colleague=d)
    db.session.commit()
    db.session.query(Notification).delete()
    line = _run(app)  # nothing is due soon yet
    assert "0 approaching" in line and _notes("opinion.deadline") == []
    _age(claimed, 40)  # 8 of 48 hours left
    _age(named, 3.5)  # 30 of 240 minutes left, not yet accepted by D
    db.session.commit()
    assert sla_state(claimed) == sla_state(named) == "approaching"
    line = _run(app)
    assert "2 approaching" in line and "2 notification(s)" in line
    # Only the consultant holding each request: not the pool, not the requester.
    assert sorted(_notes("opinion.deadline")) == sorted([c.id, d.id])
    messages = db.session.execute(sa.select(Notification.user_id, Notification.link).where(
        Notification.kind == "opinion.deadline")).all()
    assert sorted(messages) == sorted([(c.id, f"/opinions/{claimed.id}"),
                                       (d.id, f"/opinions/{named.id}")])
    assert "0 notification(s)" in _run(app)
    assert sorted(_notes("opinion.deadline")) == sorted([c.id, d.id])
