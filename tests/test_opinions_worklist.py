"""Second opinions: the worklist, claims, decline, cancel and the message thread."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import Notification, OpinionRequest
from qaportal.opinions import service
from qaportal.permissions import study_access_mode
from tests.factories import make_opinion_request
from tests.opinion_world import planted_study

# --- worklist ------------------------------------------------------------------------------

def test_worklist_sorted_by_due_with_filters_and_countdown(client, auth, people):
    a, b = people["a"], people["b"]
    routine = make_opinion_request(planted_study(a), a, priority="routine")
    stat = make_opinion_request(planted_study(a, modality="MR"), a, priority="stat")
    named = make_opinion_request(planted_study(a), a, priority="urgent", colleague=b)
    db.session.commit()
    auth.login(b)
    page = client.get("/opinions/").get_data(as_text=True)
    mine = page.split('id="my-worklist"')[1].split('id="sent"')[0]
    order = [mine.index(f'data-request-id="{r.id}"') for r in (stat, named, routine)]
    assert order == sorted(order)
    assert "data-due=" in mine and "prio-stat" in mine
    filtered = client.get("/opinions/?priority=stat").get_data(as_text=True)
    assert f'data-request-id="{stat.id}"' in filtered
    assert f'data-request-id="{routine.id}"' not in filtered
    by_mod = client.get("/opinions/?modality=mr").get_data(as_text=True)
    assert f'data-request-id="{stat.id}"' in by_mod
    assert f'data-request-id="{named.id}"' not in by_mod
    auth.logout()
    auth.login(a)
    sent = client.get("/opinions/").get_data(as_text=True).split('id="sent"')[1]
    assert all(f'data-request-id="{r.id}"' in sent for r in (routine, stat, named))


def test_overdue_rows_highlighted_without_sla_check(client, auth, people):
    a, b = people["a"], people["b"]
    req = make_opinion_request(planted_study(a), a, priority="stat")
    req.requested_at -= timedelta(hours=2)
    req.due_at -= timedelta(hours=2)
    db.session.commit()
    auth.login(b)
    page = client.get("/opinions/").get_data(as_text=True)
    assert f'class="sla-overdue" data-request-id="{req.id}"' in page
    assert "overdue 1 h" in page


# --- claim, accept, decline, cancel, re-route ----------------------------------------------

def test_claim_grants_access_and_second_claim_is_told(client, auth, people):
    a, b, c = people["a"], people["b"], people["c"]
    study = planted_study(a)
    req = make_opinion_request(study, a)
    db.session.commit()
    auth.login(b)
    assert client.post(f"/opinions/{req.id}/claim").status_code == 302
    db.session.refresh(req)
    assert req.status == "accepted" and req.consultant_id == b.id and req.accepted_at
    assert study_access_mode(b, study) == "full"
    assert db.session.scalar(sa.select(Notification).where(
        Notification.user_id == a.id, Notification.kind == "opinion.claimed"))
    with pytest.raises(service.OpinionError):
        service.claim(req, c)


def test_late_claim_is_told_someone_else_won(client, auth, people):
    a, b, c = people["a"], people["b"], people["c"]
    req = make_opinion_request(planted_study(a), a)
    db.session.commit()
    auth.login(c)
    assert client.get(f"/opinions/{req.id}").status_code == 200  # C sees it in the pool
    service.claim(req, b)  # B is quicker
    db.session.commit()
    resp = client.post(f"/opinions/{req.id}/claim", follow_redirects=True)
    assert resp.status_code == 200
    assert "Another consultant claimed this request" in resp.get_data(as_text=True)
    assert db.session.get(OpinionRequest, req.id).consultant_id == b.id


def test_claim_rechecks_licence(app, people):
    a, b = people["a"], people["b"]
    req = make_opinion_request(planted_study(a), a)
    b.licenses[0].valid_to = date.today() - timedelta(days=1)
    b.licenses[0].valid_from = date.today() - timedelta(days=30)
    db.session.flush()
    with pytest.raises(service.OpinionError, match="licence"):
        service.claim(req, b)


def test_decline_pool_request_returns_to_pool(client, auth, people):
    a, b, c = people["a"], people["b"], people["c"]
    study = planted_study(a)
    req = make_opinion_request(study, a)
    service.claim(req, b)
    db.session.commit()
    auth.login(b)
    resp = client.post(f"/opinions/{req.id}/decline", data={"decline-reason": ""})
    assert resp.status_code == 400
    resp = client.post(f"/opinions/{req.id}/decline", data={"decline-reason": "On leave"})
    assert resp.status_code == 302
    db.session.refresh(req)
    assert req.status == "open" and req.consultant_id is None
    assert study_access_mode(b, study) is None
    assert req.declines[0].reason == "On leave"
    # B declined it: not offered to B again; C can claim it.
    assert client.get(f"/opinions/{req.id}").status_code == 404
    service.claim(req, c)
    assert req.consultant_id == c.id


def test_named_request_accept_decline_and_reroute(client, auth, people):
    a, b, c = people["a"], people["b"], people["c"]
    study = planted_study(a)
    req = make_opinion_request(study, a, colleague=b)
    db.session.commit()
    auth.login(c)
    assert client.get(f"/opinions/{req.id}").status_code == 404  # not a pool request
    auth.logout()
    auth.login(b)
    page = client.get(f"/opinions/{req.id}").get_data(as_text=True)
    assert "Accept" in page and "ZZPLANTED" not in page
    assert client.post(f"/opinions/{req.id}/claim").status_code == 302
    assert db.session.get(OpinionRequest, req.id).status == "open"  # cannot claim a named one
    client.post(f"/opinions/{req.id}/accept")
    db.session.refresh(req)
    assert req.status == "accepted" and study_access_mode(b, study) == "full"
    client.post(f"/opinions/{req.id}/decline", data={"decline-reason": "Conflict of interest"})
    db.session.refresh(req)
    assert req.status == "declined" and req.consultant_id is None
    assert study_access_mode(b, study) is None
    auth.logout()
    auth.login(a)
    page = client.get(f"/opinions/{req.id}").get_data(as_text=True)
    assert "Conflict of interest" in page and "Send it elsewhere" in page
    resp = client.post(f"/opinions/{req.id}/reroute",
                       data={"recipient": "colleague", "colleague": str(c.id), "pool": ""})
    assert resp.status_code == 302
    db.session.refresh(req)
    assert req.status == "open" and req.consultant_id == c.id


def test_cancel_with_reason_revokes_access(client, auth, people):
    a, b = people["a"], people["b"]
    study = planted_study(a)
    req = make_opinion_request(study, a)
    service.claim(req, b)
    db.session.commit()
    auth.login(b)
    assert client.post(f"/opinions/{req.id}/cancel",
                       data={"cancel-reason": "x"}).status_code == 403
    auth.logout()
    auth.login(a)
    resp = client.post(f"/opinions/{req.id}/cancel", data={"cancel-reason": ""})
    assert resp.status_code == 400
    resp = client.post(f"/opinions/{req.id}/cancel", data={"cancel-reason": "Resolved clinically"})
    assert resp.status_code == 302
    db.session.refresh(req)
    assert req.status == "cancelled" and req.cancel_reason == "Resolved clinically"
    assert req.cancelled_at is not None
    assert study_access_mode(b, study) is None
    assert db.session.scalar(sa.select(Notification).where(
        Notification.user_id == b.id, Notification.kind == "opinion.cancelled"))
    with pytest.raises(service.OpinionError):
        service.cancel(req, a, "again")


def test_message_thread_notifies_other_party(client, auth, people):
    a, b, other = people["a"], people["b"], people["other"]
    req = make_opinion_request(planted_study(a), a)
    service.claim(req, b)
    db.session.commit()
    auth.login(b)
    assert client.post(f"/opinions/{req.id}/messages", data={"body": ""}).status_code == 400
    client.post(f"/opinions/{req.id}/messages", data={"body": "Contrast given?"})
    auth.logout()
    auth.login(a)
    client.post(f"/opinions/{req.id}/messages", data={"body": "Yes."})
    db.session.refresh(req)
    assert [m.body for m in req.messages] == ["Contrast given?", "Yes."]
    kinds = db.session.execute(sa.select(Notification.user_id, Notification.kind).where(
        Notification.kind == "opinion.message")).all()
    assert sorted(kinds) == sorted([(a.id, "opinion.message"), (b.id, "opinion.message")])
    with pytest.raises(service.OpinionError):
        service.post_message(req, other, "hi")

