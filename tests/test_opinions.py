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
from tests.opinion_world import assert_no_identifiers, planted_study

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
    study = planted_study(a)
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
    study = planted_study(a)
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
    study = planted_study(a)
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


def test_deidentified_request_hides_identifiers_from_consultant(client, auth, people):
    a, b = people["a"], people["b"]
    study = planted_study(a)
    req = make_opinion_request(study, a, deidentified=True, question="Infarct?")
    db.session.commit()
    auth.login(b)
    assert_no_identifiers(client.get("/opinions/").get_data(as_text=True))
    assert_no_identifiers(client.get(f"/opinions/{req.id}").get_data(as_text=True))
    client.post(f"/opinions/{req.id}/claim")
    grant = db.session.scalar(sa.select(StudyAccess).where(StudyAccess.user_id == b.id))
    assert grant.mode == "deidentified"
    assert study_access_mode(b, study) == "deidentified"
    for url in (f"/opinions/{req.id}", f"/opinions/{req.id}/opinion", "/opinions/",
                f"/studies/{study.id}", "/notifications/"):
        page = client.get(url).get_data(as_text=True)
        assert_no_identifiers(page)
    assert study.pseudonym in client.get(f"/opinions/{req.id}").get_data(as_text=True)
    # The requester still sees the patient on their own request.
    auth.logout()
    auth.login(a)
    # ...formatted as a person's name, never the raw DICOM "FAMILY^GIVEN".
    mine = client.get(f"/opinions/{req.id}").get_data(as_text=True)
    assert "ZZPLANTED, NAMEXQ" in mine and "ZZPLANTED^NAMEXQ" not in mine


def test_full_share_shows_identifiers_to_consultant(client, auth, people):
    a, b = people["a"], people["b"]
    req = make_opinion_request(planted_study(a), a)
    db.session.commit()
    auth.login(b)
    client.post(f"/opinions/{req.id}/claim")
    # ...formatted as a person's name, never the raw DICOM "FAMILY^GIVEN".
    mine = client.get(f"/opinions/{req.id}").get_data(as_text=True)
    assert "ZZPLANTED, NAMEXQ" in mine and "ZZPLANTED^NAMEXQ" not in mine


def test_pool_member_sees_only_what_they_need(client, auth, people):
    a, b = people["a"], people["b"]
    study = planted_study(a, description="CT HEAD SECRETDESC")
    req = make_opinion_request(study, a, priority="stat", question="Bleed?",
                               history="HISTORYTEXT", preliminary="PRELIMTEXT")
    db.session.commit()
    auth.login(b)
    page = client.get(f"/opinions/{req.id}").get_data(as_text=True)
    assert "Bleed?" in page and "STAT" in page and "CT" in page
    for hidden in ("HISTORYTEXT", "PRELIMTEXT", "SECRETDESC", "Open images"):
        assert hidden not in page
    assert_no_identifiers(page)
    assert client.get(f"/studies/{study.id}").status_code == 404


# --- access --------------------------------------------------------------------------------

def test_unrelated_users_get_404(client, auth, people, app):
    a = people["a"]
    req = make_opinion_request(planted_study(a), a)
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
    req = make_opinion_request(planted_study(a), a)
    service.claim(req, b)
    db.session.commit()
    auth.login(qa)
    page = client.get(f"/opinions/{req.id}").get_data(as_text=True)
    assert "ZZPLANTED, NAMEXQ" in page
    assert f"#{req.id}" in client.get("/opinions/").get_data(as_text=True)
    auth.logout()
    auth.login(c)
    assert client.get(f"/opinions/{req.id}").status_code == 404
    assert f"/opinions/{req.id}\"" not in client.get("/opinions/").get_data(as_text=True)


def test_every_view_is_audited(client, auth, people):
    a, b = people["a"], people["b"]
    req = make_opinion_request(planted_study(a), a)
    db.session.commit()
    auth.login(b)
    client.get(f"/opinions/{req.id}")
    client.get("/opinions/")
    actions = set(db.session.scalars(sa.select(AuditEvent.action).where(
        AuditEvent.actor_id == b.id)))
    assert {"opinion.viewed", "opinion.worklist_viewed"} <= actions



def test_study_page_offers_the_request_action(client, auth, people):
    a = people["a"]
    study = planted_study(a)
    db.session.commit()
    auth.login(a)
    page = client.get(f"/studies/{study.id}").get_data(as_text=True)
    assert f"/opinions/new/{study.id}" in page


def test_free_text_naming_the_patient_is_redacted_for_a_deidentified_consultant(
        client, auth, people):
    """What the requester typed is shown to the consultant without the patient's identifiers."""
    a, b = people["a"], people["b"]
    study = planted_study(a)
    study.clinical_history = "Zzplanted came in on 1961-07-23 with headache."
    req = make_opinion_request(
        study, a, deidentified=True, question="Does Mr NAMEXQ ZZPLANTED have an infarct?",
        history="MRN PIDPLANT987, accession ACCPLANT654; no prior imaging.",
        preliminary="Dr. reads ZZPLANTED, NAMEXQ as normal. Annual review unchanged.")
    db.session.commit()
    auth.login(b)
    worklist = client.get("/opinions/").get_data(as_text=True)
    assert_no_identifiers(worklist)
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
        assert_no_identifiers(page)
        assert "[removed]" in page
    detail = client.get(f"/opinions/{req.id}").get_data(as_text=True)
    assert "Annual review unchanged." in detail  # whole words only: ordinary text is kept
    assert "[removed]&#39;s wife called." in detail
    auth.logout()
    auth.login(a)
    assert "Does Mr NAMEXQ ZZPLANTED have an infarct?" in client.get(
        f"/opinions/{req.id}").get_data(as_text=True)
