"""Second opinions: requests, eligibility, de-identified sharing, decline/cancel, access."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import AuditEvent, Notification, OpinionRequest, StudyAccess
from qaportal.opinions import service
from qaportal.opinions.eligibility import ineligibility
from qaportal.permissions import study_access_mode
from tests.factories import make_opinion_request, make_study, make_user

PLANTED = {"patient_name": "ZZPLANTED^NAMEXQ", "patient_id": "PIDPLANT987",
           "accession_number": "ACCPLANT654", "patient_birth_date": date(1961, 7, 23)}


@pytest.fixture
def people(app):
    """A requester, two neuro consultants, and bystanders, all licensed in CA."""
    requester = make_user(subspecialties=["body"], licenses=["CA"], full_name="Dr Requester")
    b = make_user(subspecialties=["neuro"], licenses=["CA"], full_name="Dr Bravo")
    c = make_user(subspecialties=["neuro"], licenses=["CA"], full_name="Dr Charlie")
    other = make_user(subspecialties=["body"], licenses=["CA"], full_name="Dr Other")
    qa = make_user(roles=("qa_manager",), full_name="Quinn QA")
    db.session.commit()
    return {"a": requester, "b": b, "c": c, "other": other, "qa": qa}


def _study(owner, **kw):
    study = make_study(owner, patient_name=PLANTED["patient_name"], **kw)
    study.patient_id = PLANTED["patient_id"]
    study.accession_number = PLANTED["accession_number"]
    study.patient_birth_date = PLANTED["patient_birth_date"]
    db.session.flush()
    return study


# --- eligibility ---------------------------------------------------------------------------

def test_eligibility_reasons(app):
    today = date.today()
    requester = make_user(licenses=["CA"])
    study = make_study(requester)
    expired = make_user(subspecialties=["neuro"],
                        licenses=[("CA", today - timedelta(days=400), today - timedelta(days=1))])
    wrong_state = make_user(subspecialties=["neuro"], licenses=["TX"])
    inactive = make_user(subspecialties=["neuro"], licenses=["CA"], active=False)
    wrong_sub = make_user(subspecialties=["msk"], licenses=["CA"])
    not_rad = make_user(roles=("reviewer",), subspecialties=["neuro"], licenses=["CA"])
    good = make_user(subspecialties=["neuro"], licenses=["CA"])

    def why(u):
        return ineligibility(u, study, requester_id=requester.id, pool="neuro")

    assert why(good) == ()
    assert why(expired) == ("no active licence for CA",)
    assert why(wrong_state) == ("no active licence for CA",)
    assert why(inactive) == ("account is inactive",)
    assert why(wrong_sub) == ("not in the Neuroradiology pool",)
    assert why(not_rad) == ("is not a radiologist",)
    assert "is the requester" in ineligibility(requester, study, requester_id=requester.id,
                                               pool=None)
    # A named colleague needs no subspecialty.
    assert ineligibility(wrong_sub, study, requester_id=requester.id, pool=None) == ()


def test_form_offers_only_eligible_and_explains_the_rest(client, auth, people):
    a = people["a"]
    study = _study(a)
    expired = make_user(full_name="Dr Expired", licenses=[
        ("CA", date.today() - timedelta(days=400), date.today() - timedelta(days=2))])
    texan = make_user(full_name="Dr Texan", licenses=["TX"])
    db.session.commit()
    auth.login(a)
    page = client.get(f"/opinions/new/{study.id}").get_data(as_text=True)
    select = page.split('id="colleague"')[1].split("</select>")[0]
    assert "Dr Bravo" in select and "Dr Charlie" in select
    assert "Dr Expired" not in select and "Dr Texan" not in select
    assert "Dr Requester" not in select
    offered = page.split('id="not-offered"')[1]
    assert "Dr Expired</strong>: no active licence for CA" in offered
    assert "Dr Texan</strong>: no active licence for CA" in offered
    # The study's report pre-fills the preliminary read.
    assert "No acute findings." in page
    assert expired.id and texan.id


def test_create_request_to_pool_notifies_members_and_computes_due(client, auth, people):
    a = people["a"]
    study = _study(a)
    db.session.commit()
    auth.login(a)
    resp = client.post(f"/opinions/new/{study.id}", data={
        "request_type": "opinion", "clinical_question": "Infarct?", "priority": "stat",
        "recipient": "pool", "pool": "neuro", "colleague": "None",
        "preliminary_read": "Prelim", "clinical_history": "Hx",
    })
    assert resp.status_code == 302, resp.get_data(as_text=True)[:2000]
    req = db.session.scalar(sa.select(OpinionRequest))
    assert req.status == "open" and req.pool == "neuro" and req.consultant_id is None
    assert abs((req.due_at - req.requested_at).total_seconds() - 3600) < 1
    notified = set(db.session.scalars(sa.select(Notification.user_id).where(
        Notification.kind == "opinion.new")))
    assert notified == {people["b"].id, people["c"].id}
    assert db.session.scalar(sa.select(AuditEvent).where(
        AuditEvent.action == "opinion.requested")) is not None


def test_form_error_keeps_input_and_refuses_ineligible_colleague(client, auth, people):
    a = people["a"]
    study = _study(a)
    texan = make_user(full_name="Dr Texan", licenses=["TX"])
    db.session.commit()
    auth.login(a)
    resp = client.post(f"/opinions/new/{study.id}", data={
        "request_type": "coverage_review", "clinical_question": "My typed question",
        "priority": "urgent", "recipient": "colleague", "colleague": str(texan.id),
        "payer_criteria": "",
    })
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert "My typed question" in page
    assert "Choose a colleague from the list." in page
    assert "needs the payer" in page
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OpinionRequest)) == 0


def test_configured_targets_from_environment(monkeypatch, tmp_path, db_url):
    from tests.conftest import make_test_app

    monkeypatch.setenv("QAPORTAL_OPINION_TARGET_HOURS", "stat=0.5,routine=24")
    app = make_test_app(tmp_path, db_url)
    assert app.config["OPINION_TARGET_HOURS"] == {"stat": 0.5, "urgent": 4, "routine": 24}
    monkeypatch.setenv("QAPORTAL_OPINION_TARGET_HOURS", "asap=1")
    from qaportal.config import ConfigError

    with pytest.raises(ConfigError):
        make_test_app(tmp_path, db_url)


def test_study_without_jurisdiction_is_refused(app, people):
    study = make_study(people["a"], jurisdiction=None)
    with pytest.raises(service.OpinionError, match="jurisdiction"):
        make_opinion_request(study, people["a"])


# --- de-identified sharing -----------------------------------------------------------------

def _assert_no_identifiers(text: str) -> None:
    for value in ("ZZPLANTED", "NAMEXQ", "PIDPLANT987", "ACCPLANT654", "1961-07-23"):
        assert value not in text


def test_deidentified_request_hides_identifiers_from_consultant(client, auth, people):
    a, b = people["a"], people["b"]
    study = _study(a)
    req = make_opinion_request(study, a, deidentified=True, question="Infarct?")
    db.session.commit()
    auth.login(b)
    _assert_no_identifiers(client.get("/opinions/").get_data(as_text=True))
    _assert_no_identifiers(client.get(f"/opinions/{req.id}").get_data(as_text=True))
    client.post(f"/opinions/{req.id}/claim")
    grant = db.session.scalar(sa.select(StudyAccess).where(StudyAccess.user_id == b.id))
    assert grant.mode == "deidentified"
    assert study_access_mode(b, study) == "deidentified"
    for url in (f"/opinions/{req.id}", f"/opinions/{req.id}/opinion", "/opinions/",
                f"/studies/{study.id}", "/notifications/"):
        page = client.get(url).get_data(as_text=True)
        _assert_no_identifiers(page)
    assert study.pseudonym in client.get(f"/opinions/{req.id}").get_data(as_text=True)
    # The requester still sees the patient on their own request.
    auth.logout()
    auth.login(a)
    assert "ZZPLANTED^NAMEXQ" in client.get(f"/opinions/{req.id}").get_data(as_text=True)


def test_full_share_shows_identifiers_to_consultant(client, auth, people):
    a, b = people["a"], people["b"]
    req = make_opinion_request(_study(a), a)
    db.session.commit()
    auth.login(b)
    client.post(f"/opinions/{req.id}/claim")
    assert "ZZPLANTED^NAMEXQ" in client.get(f"/opinions/{req.id}").get_data(as_text=True)


def test_pool_member_sees_only_what_they_need(client, auth, people):
    a, b = people["a"], people["b"]
    study = _study(a, description="CT HEAD SECRETDESC")
    req = make_opinion_request(study, a, priority="stat", question="Bleed?",
                               history="HISTORYTEXT", preliminary="PRELIMTEXT")
    db.session.commit()
    auth.login(b)
    page = client.get(f"/opinions/{req.id}").get_data(as_text=True)
    assert "Bleed?" in page and "STAT" in page and "CT" in page
    for hidden in ("HISTORYTEXT", "PRELIMTEXT", "SECRETDESC", "Open images"):
        assert hidden not in page
    _assert_no_identifiers(page)
    assert client.get(f"/studies/{study.id}").status_code == 404


# --- access --------------------------------------------------------------------------------

def test_unrelated_users_get_404(client, auth, people, app):
    a = people["a"]
    req = make_opinion_request(_study(a), a)
    outsider = make_user(subspecialties=["body"], licenses=["CA"])
    unlicensed_neuro = make_user(subspecialties=["neuro"], licenses=["TX"])
    reviewer = make_user(roles=("reviewer",))
    db.session.commit()
    for user in (outsider, unlicensed_neuro, reviewer):
        auth.login(user)
        for url in (f"/opinions/{req.id}", f"/opinions/{req.id}/opinion"):
            assert client.get(url).status_code == 404, (user, url)
        for url in ("claim", "accept", "decline", "cancel", "messages", "sign", "draft",
                    "addenda", "reroute"):
            assert client.post(f"/opinions/{req.id}/{url}").status_code == 404, (user, url)
        auth.logout()
    assert client.get("/opinions/999999").status_code in (302, 404)


def test_qa_manager_sees_everything_and_claimed_request_leaves_pool(client, auth, people):
    a, b, c, qa = people["a"], people["b"], people["c"], people["qa"]
    req = make_opinion_request(_study(a), a)
    service.claim(req, b)
    db.session.commit()
    auth.login(qa)
    page = client.get(f"/opinions/{req.id}").get_data(as_text=True)
    assert "ZZPLANTED^NAMEXQ" in page
    assert f"#{req.id}" in client.get("/opinions/").get_data(as_text=True)
    auth.logout()
    auth.login(c)
    assert client.get(f"/opinions/{req.id}").status_code == 404
    assert f"/opinions/{req.id}\"" not in client.get("/opinions/").get_data(as_text=True)


def test_every_view_is_audited(client, auth, people):
    a, b = people["a"], people["b"]
    req = make_opinion_request(_study(a), a)
    db.session.commit()
    auth.login(b)
    client.get(f"/opinions/{req.id}")
    client.get("/opinions/")
    actions = set(db.session.scalars(sa.select(AuditEvent.action).where(
        AuditEvent.actor_id == b.id)))
    assert {"opinion.viewed", "opinion.worklist_viewed"} <= actions


# --- worklist ------------------------------------------------------------------------------

def test_worklist_sorted_by_due_with_filters_and_countdown(client, auth, people):
    a, b = people["a"], people["b"]
    routine = make_opinion_request(_study(a), a, priority="routine")
    stat = make_opinion_request(_study(a, modality="MR"), a, priority="stat")
    named = make_opinion_request(_study(a), a, priority="urgent", colleague=b)
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
    req = make_opinion_request(_study(a), a, priority="stat")
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
    study = _study(a)
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
    req = make_opinion_request(_study(a), a)
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
    req = make_opinion_request(_study(a), a)
    b.licenses[0].valid_to = date.today() - timedelta(days=1)
    b.licenses[0].valid_from = date.today() - timedelta(days=30)
    db.session.flush()
    with pytest.raises(service.OpinionError, match="licence"):
        service.claim(req, b)


def test_decline_pool_request_returns_to_pool(client, auth, people):
    a, b, c = people["a"], people["b"], people["c"]
    study = _study(a)
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
    study = _study(a)
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
    study = _study(a)
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
    req = make_opinion_request(_study(a), a)
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


def test_study_page_offers_the_request_action(client, auth, people):
    a = people["a"]
    study = _study(a)
    db.session.commit()
    auth.login(a)
    page = client.get(f"/studies/{study.id}").get_data(as_text=True)
    assert f"/opinions/new/{study.id}" in page


def test_free_text_naming_the_patient_is_redacted_for_a_deidentified_consultant(
        client, auth, people):
    """What the requester typed is shown to the consultant without the patient's identifiers."""
    a, b = people["a"], people["b"]
    study = _study(a)
    study.clinical_history = "Zzplanted came in on 1961-07-23 with headache."
    req = make_opinion_request(
        study, a, deidentified=True, question="Does Mr NAMEXQ ZZPLANTED have an infarct?",
        history="MRN PIDPLANT987, accession ACCPLANT654; no prior imaging.",
        preliminary="Dr. reads ZZPLANTED, NAMEXQ as normal. Annual review unchanged.")
    db.session.commit()
    auth.login(b)
    worklist = client.get("/opinions/").get_data(as_text=True)
    _assert_no_identifiers(worklist)
    assert "[removed]" in worklist
    client.post(f"/opinions/{req.id}/claim")
    auth.logout()
    auth.login(a)
    posted = client.post(f"/opinions/{req.id}/messages", data={"body": "Zzplanted's wife called."})
    assert posted.status_code == 302, posted.get_data(as_text=True)[-3000:]
    auth.logout()
    auth.login(b)
    for url in (f"/opinions/{req.id}", f"/opinions/{req.id}/opinion", f"/studies/{study.id}"):
        page = client.get(url).get_data(as_text=True)
        _assert_no_identifiers(page)
        assert "[removed]" in page
    detail = client.get(f"/opinions/{req.id}").get_data(as_text=True)
    assert "Annual review unchanged." in detail  # whole words only: ordinary text is kept
    assert "[removed]&#39;s wife called." in detail
    auth.logout()
    auth.login(a)
    assert "Does Mr NAMEXQ ZZPLANTED have an infarct?" in client.get(
        f"/opinions/{req.id}").get_data(as_text=True)
