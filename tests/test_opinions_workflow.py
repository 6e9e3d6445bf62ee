"""Decline notifications, the audit trail of every change, the worklist's status filter, and
scrubbed decline reasons."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import AuditEvent, Notification
from qaportal.opinions import service, signing
from qaportal.opinions.escalation import check_deadlines
from tests.factories import DEFAULT_PASSWORD, make_opinion_request, make_study, make_user

FILLED = {"findings": "Hypodensity left insula.", "impression": "Early infarct.",
          "agreement": "agree"}


@pytest.fixture
def people(app):
    a = make_user(subspecialties=["body"], licenses=["CA"], full_name="Dr Requester")
    b = make_user(subspecialties=["neuro"], licenses=["CA"], full_name="Dr Bravo")
    c = make_user(subspecialties=["neuro"], licenses=["CA"], full_name="Dr Charlie")
    d = make_user(subspecialties=["neuro"], licenses=["CA"], full_name="Dr Delta")
    qa = make_user(roles=("qa_manager",), full_name="Quinn QA")
    db.session.commit()
    return {"a": a, "b": b, "c": c, "d": d, "qa": qa}


def _notes(kind: str) -> list[tuple[int, str]]:
    return sorted(db.session.execute(sa.select(Notification.user_id, Notification.message).where(
        Notification.kind == kind)).all())


def _actions(req) -> list[tuple[str, int | None]]:
    return [tuple(row) for row in db.session.execute(
        sa.select(AuditEvent.action, AuditEvent.actor_id)
        .where(AuditEvent.object_type == "opinion_requests", AuditEvent.object_id == str(req.id))
        .order_by(AuditEvent.seq))]


# --- decline notifications ----------------------------------------------------------------

def test_pool_decline_notifies_requester_and_the_other_pool_members(app, people):
    a, b, c, d = people["a"], people["b"], people["c"], people["d"]
    req = make_opinion_request(make_study(a), a, priority="urgent")
    service.claim(req, b)
    db.session.query(Notification).delete()
    service.decline(req, b, "On leave this afternoon")
    db.session.commit()
    declined = _notes("opinion.declined")
    assert [uid for uid, _ in declined] == [a.id]
    assert "Dr Bravo declined" in declined[0][1] and "back in the pool" in declined[0][1]
    back = _notes("opinion.new")
    assert [uid for uid, _ in back] == sorted([c.id, d.id])  # not B, who declined it
    assert all("is back in the pool" in message for _, message in back)


def test_named_decline_returns_to_the_requester_only(app, people):
    a, b, c = people["a"], people["b"], people["c"]
    req = make_opinion_request(make_study(a), a, colleague=b)
    service.accept(req, b)
    db.session.query(Notification).delete()
    service.decline(req, b, "Conflict of interest")
    db.session.commit()
    declined = _notes("opinion.declined")
    assert [uid for uid, _ in declined] == [a.id]
    assert "Choose another colleague or pool" in declined[0][1]
    assert _notes("opinion.new") == []
    assert c.id not in {n.user_id for n in db.session.scalars(sa.select(Notification))}


# --- every change is audited ----------------------------------------------------------------

def test_every_change_of_a_request_is_audited(app, people):
    a, b, c, qa = people["a"], people["b"], people["c"], people["qa"]
    # Named to B: accepted, declined, re-routed to C, who accepts, discusses, drafts, signs
    # and adds an addendum.
    req = make_opinion_request(make_study(a), a, colleague=b)
    service.accept(req, b)
    service.decline(req, b, "Conflict of interest")
    service.reroute(req, a, colleague=c)
    service.accept(req, c)
    service.post_message(req, c, "Contrast given?")
    service.post_message(req, a, "No.")
    signing.save_draft(req, c, FILLED)
    signing.sign(req, c, DEFAULT_PASSWORD)
    signing.add_addendum(req, c, "Compared with the prior: unchanged.", DEFAULT_PASSWORD)
    db.session.commit()
    assert _actions(req) == [
        ("opinion.requested", a.id), ("opinion.accepted", b.id), ("opinion.declined", b.id),
        ("opinion.rerouted", a.id), ("opinion.accepted", c.id),
        ("opinion.message_posted", c.id), ("opinion.message_posted", a.id),
        ("opinion.draft_saved", c.id), ("opinion.signed", c.id),
        ("opinion.addendum_signed", c.id),
    ]
    # A pool request claimed by B, then cancelled by A.
    pooled = make_opinion_request(make_study(a), a, priority="urgent")
    service.claim(pooled, b)
    service.cancel(pooled, a, "Resolved clinically")
    db.session.commit()
    assert _actions(pooled) == [("opinion.requested", a.id), ("opinion.claimed", b.id),
                                ("opinion.cancelled", a.id)]
    # A STAT request past its deadline: the sla-check records the breach once.
    late = make_opinion_request(make_study(a), a, priority="stat")
    late.requested_at -= timedelta(hours=2)
    late.due_at -= timedelta(hours=2)
    db.session.commit()
    check_deadlines()
    check_deadlines()
    db.session.commit()
    assert _actions(late) == [("opinion.requested", a.id), ("opinion.sla_breached", None)]
    breach = db.session.scalar(sa.select(AuditEvent).where(
        AuditEvent.action == "opinion.sla_breached"))
    assert breach.actor_label == "sla-check"
    assert qa.id in {uid for uid, _ in _notes("opinion.breach")}


# --- worklist status filter ----------------------------------------------------------------

def _ids(page: str, section: str, end: str | None) -> str:
    part = page.split(f'id="{section}"')[1]
    return part.split(f'id="{end}"')[0] if end else part


def test_worklist_status_filter(client, auth, people):
    a, b, qa = people["a"], people["b"], people["qa"]
    pooled = make_opinion_request(make_study(a), a)  # open, in B's pool
    named = make_opinion_request(make_study(a), a, colleague=b)  # open, waiting for B
    claimed = make_opinion_request(make_study(a), a)
    service.claim(claimed, b)
    signed = make_opinion_request(make_study(a), a)
    service.claim(signed, b)
    signing.save_draft(signed, b, FILLED)
    signing.sign(signed, b, DEFAULT_PASSWORD)
    cancelled = make_opinion_request(make_study(a), a)
    service.cancel(cancelled, a, "Not needed")
    db.session.commit()
    every = (pooled, named, claimed, signed, cancelled)

    def shown(url: str, section: str, end: str | None) -> set[int]:
        page = _ids(client.get(url).get_data(as_text=True), section, end)
        return {r.id for r in every if f'data-request-id="{r.id}"' in page}

    auth.login(b)
    assert shown("/opinions/", "my-worklist", "sent") == {pooled.id, named.id, claimed.id}
    assert shown("/opinions/?status=accepted", "my-worklist", "sent") == {claimed.id}
    assert shown("/opinions/?status=open", "my-worklist", "sent") == {pooled.id, named.id}
    assert shown("/opinions/?status=signed", "my-worklist", "sent") == {signed.id}
    assert shown("/opinions/?status=bogus", "my-worklist", "sent") == {
        pooled.id, named.id, claimed.id}  # an unknown status is ignored, not an error
    auth.logout()
    auth.login(a)
    assert shown("/opinions/", "sent", None) == set(r.id for r in every)
    assert shown("/opinions/?status=cancelled", "sent", None) == {cancelled.id}
    assert shown("/opinions/?status=signed", "sent", None) == {signed.id}
    auth.logout()
    auth.login(qa)
    assert shown("/opinions/", "all-requests", None) == {pooled.id, named.id, claimed.id}
    assert shown("/opinions/?status=signed", "all-requests", None) == {signed.id}


# --- decline reasons shown de-identified ------------------------------------------------------

def test_decline_reason_naming_the_patient_is_scrubbed_for_a_deidentified_consultant(
        client, auth, people):
    a, b, c = people["a"], people["b"], people["c"]
    study = make_study(a, patient_name="ZZDECLINE^PLANTEDQ")
    req = make_opinion_request(study, a, deidentified=True)
    service.claim(req, b)
    service.decline(req, b, "Mr Zzdecline is my neighbour")
    service.claim(req, c)
    db.session.commit()
    auth.login(c)
    page = client.get(f"/opinions/{req.id}").get_data(as_text=True)
    declines = _ids(page, "declines", None)
    assert "Dr Bravo: Mr [removed] is my neighbour" in declines
    assert "ZZDECLINE" not in page.upper()
    auth.logout()
    auth.login(a)  # the requester sees the full study: the reason as written
    page = client.get(f"/opinions/{req.id}").get_data(as_text=True)
    assert "Mr Zzdecline is my neighbour" in page
