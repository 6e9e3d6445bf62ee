"""Discrepancy cases: committee composition, blinded independent scoring, decision, feedback."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from qaportal.models import StudyAccess
from qaportal.qa import cases as cs
from tests.factories import make_review, make_study, make_user


@pytest.fixture
def c(db):
    reader = make_user(["radiologist"])
    reviewer = make_user(["reviewer"])
    m1 = make_user(["reviewer"])
    m2 = make_user(["radiologist"])
    qa = make_user(["qa_manager"])
    review = make_review(make_study(reader).read, reviewer, "3b")
    case = cs.open_case(review, by=reviewer)
    db.session.commit()
    return {"reader": reader, "reviewer": reviewer, "m1": m1, "m2": m2, "qa": qa, "case": case}


def test_committee_never_includes_reader_or_reviewer(db, c):
    case = c["case"]
    ids = {u.id for u in cs.committee_candidates(case)}
    assert c["reader"].id not in ids and c["reviewer"].id not in ids
    assert {c["m1"].id, c["m2"].id} <= ids
    for bad in (c["reader"], c["reviewer"]):
        with pytest.raises(cs.CaseError):
            cs.assign_committee(case, [c["m1"], bad], c["qa"])
    db.session.rollback()
    with pytest.raises(cs.CaseError):
        cs.assign_committee(case, [], c["qa"])


def test_members_score_blind_until_all_have_scored(db, c):
    case = c["case"]
    cs.assign_committee(case, [c["m1"], c["m2"]], c["qa"])
    assert case.status == "committee"
    grants = db.session.scalars(sa.select(StudyAccess).where(
        StudyAccess.source_type == "committee_review")).all()
    assert {g.mode for g in grants} == {"deidentified"} and len(grants) == 2
    cs.cast_vote(case, c["m1"], "3b", "Clear miss")
    assert [v.user_id for v in cs.visible_votes(case, c["m1"])] == [c["m1"].id]
    assert cs.visible_votes(case, c["m2"]) == []
    assert len(cs.visible_votes(case, c["qa"])) == 1
    with pytest.raises(cs.CaseError):
        cs.cast_vote(case, c["m1"], "1", "")  # once per round
    with pytest.raises(cs.CaseError):
        cs.record_decision(case, c["qa"], final_score="3b", outcome="upheld", rationale="x")
    with pytest.raises(cs.CaseError):
        cs.cast_vote(case, c["reviewer"], "1", "")  # not a member
    with pytest.raises(cs.CaseError):
        cs.cast_vote(case, c["m2"], "3a", "")  # comment needed
    cs.cast_vote(case, c["m2"], "3a", "Subtle")
    assert len(cs.visible_votes(case, c["m1"])) == 2


def test_committee_page_hides_other_scores_until_all_scored(client, auth, db, c):
    case = c["case"]
    cs.assign_committee(case, [c["m1"], c["m2"]], c["qa"])
    cs.cast_vote(case, c["m1"], "2b", "Distinctive-comment-of-m1")
    db.session.commit()
    auth.login(c["m2"])
    body = client.get(f"/reviews/committee/{case.id}").get_data(as_text=True)
    assert "Distinctive-comment-of-m1" not in body and 'id="vote-form"' in body
    resp = client.post(f"/reviews/committee/{case.id}/vote", data={"score": "3a"})
    assert resp.status_code == 400  # comment required, form re-rendered
    resp = client.post(f"/reviews/committee/{case.id}/vote",
                       data={"score": "3a", "comment": "m2 says subtle"})
    assert resp.status_code == 302
    body = client.get(f"/reviews/committee/{case.id}").get_data(as_text=True)
    assert "Distinctive-comment-of-m1" in body and "Member A" in body
    outsider = make_user(["reviewer"])
    db.session.commit()
    auth.logout()
    auth.login(outsider)
    assert client.get(f"/reviews/committee/{case.id}").status_code == 404


def test_decision_feedback_acknowledge_closes(db, c):
    case = c["case"]
    cs.assign_committee(case, [c["m1"]], c["qa"])
    cs.cast_vote(case, c["m1"], "3b", "Miss")
    with pytest.raises(cs.CaseError):
        cs.record_decision(case, c["qa"], final_score="3b", outcome="upheld", rationale=" ")
    cs.record_decision(case, c["qa"], final_score="3b", outcome="upheld",
                       rationale="Should be seen.")
    assert case.status == "decided" and case.decided_at is not None
    cs.acknowledge(case, c["reader"], "Understood.")
    assert case.status == "closed" and case.closed_at and case.acknowledged_at
    events = [e.event for e in case.events]
    assert events == ["opened", "committee_assigned", "voted", "decided", "acknowledged",
                      "closed"]
    assert all(e.at is not None for e in case.events)
    with pytest.raises(cs.CaseError):
        cs.dispute(case, c["reader"], "too late")


def test_dispute_returns_to_committee_for_a_new_round(db, c):
    case = c["case"]
    cs.assign_committee(case, [c["m1"]], c["qa"])
    cs.cast_vote(case, c["m1"], "3b", "Miss")
    cs.record_decision(case, c["qa"], final_score="3b", outcome="upheld", rationale="Seen.")
    with pytest.raises(cs.CaseError):
        cs.dispute(case, c["reader"], "")
    cs.dispute(case, c["reader"], "The finding is a vessel.")
    assert (case.status, case.round) == ("committee", 2) and case.disputed_at
    assert cs.visible_votes(case, c["m1"]) == []  # a fresh round
    cs.cast_vote(case, c["m1"], "1", "Agree, vessel.")
    cs.record_decision(case, c["qa"], final_score="1", outcome="overturned",
                       rationale="Vessel on review.")
    assert case.final_score == "1" and case.status == "decided"


def test_feedback_pages_for_the_reader_only(client, auth, db, c):
    case = c["case"]
    cs.assign_committee(case, [c["m1"]], c["qa"])
    cs.cast_vote(case, c["m1"], "3b", "Miss")
    db.session.commit()
    auth.login(c["reader"])
    assert client.get(f"/reviews/feedback/{case.id}").status_code == 404  # not decided yet
    cs.record_decision(case, c["qa"], final_score="3b", outcome="upheld", rationale="Seen.")
    db.session.commit()
    assert client.get(f"/reviews/feedback/{case.id}").status_code == 200
    resp = client.post(f"/reviews/feedback/{case.id}/respond", data={"dispute": "Dispute"})
    assert resp.status_code == 400 and "Explain why" in resp.get_data(as_text=True)
    resp = client.post(f"/reviews/feedback/{case.id}/respond",
                       data={"acknowledge": "Acknowledge", "response": "Thanks"})
    assert resp.status_code == 302
    db.session.expire_all()
    assert db.session.get(type(case), case.id).status == "closed"
    auth.logout()
    auth.login(c["m2"])
    assert client.get(f"/reviews/feedback/{case.id}").status_code == 404


def test_qa_case_pages_assign_and_decide(client, auth, db, c):
    case = c["case"]
    auth.login(c["qa"])
    resp = client.post(f"/qa/cases/{case.id}/committee", data={"members": [c["reader"].id]})
    assert resp.status_code == 400
    resp = client.post(f"/qa/cases/{case.id}/committee", data={"members": [c["m1"].id]})
    assert resp.status_code == 302
    resp = client.post(f"/qa/cases/{case.id}/decide", data={
        "final_score": "3b", "outcome": "upheld", "rationale": "x"})
    assert resp.status_code == 400  # not everyone has scored
    cs.cast_vote(db.session.get(type(case), case.id), c["m1"], "3b", "Miss")
    db.session.commit()
    resp = client.post(f"/qa/cases/{case.id}/decide", data={
        "final_score": "3b", "outcome": "upheld", "rationale": "Agreed."})
    assert resp.status_code == 302
    assert "Feedback with reader" in client.get(f"/qa/cases/{case.id}").get_data(as_text=True)


def test_reader_sees_no_new_round_comments_while_a_dispute_is_rescored(client, auth, db, c):
    case = c["case"]
    cs.assign_committee(case, [c["m1"], c["m2"]], c["qa"])
    cs.cast_vote(case, c["m1"], "3b", "Round one: clear miss")
    cs.cast_vote(case, c["m2"], "3b", "Round one: agreed")
    cs.record_decision(case, c["qa"], final_score="3b", outcome="upheld", rationale="Seen.")
    cs.dispute(case, c["reader"], "The finding is a vessel.")
    assert cs.under_rereview(case) and cs.decided_round(case) == 1
    cs.cast_vote(case, c["m1"], "1", "Round two: vessel after all")
    db.session.commit()
    auth.login(c["reader"])
    body = client.get(f"/reviews/feedback/{case.id}").get_data(as_text=True)
    assert "Under re-review" in body and 'id="rereview"' in body
    assert "Round 1 decision (under re-review)" in body
    assert "Round 1 committee comments" in body
    assert "Round one: clear miss" in body and "Round one: agreed" in body
    assert "Round two" not in body
    listing = client.get("/reviews/feedback").get_data(as_text=True)
    assert "under re-review" in listing
    cs.cast_vote(case, c["m2"], "1", "Round two: agreed, vessel")
    cs.record_decision(case, c["qa"], final_score="1", outcome="overturned",
                       rationale="Vessel on review.")
    db.session.commit()
    assert not cs.under_rereview(case) and cs.decided_round(case) == 2
    body = client.get(f"/reviews/feedback/{case.id}").get_data(as_text=True)
    assert "Round two: vessel after all" in body and "Round two: agreed, vessel" in body
    assert "Round one" not in body and "under re-review" not in body.lower()
    assert "Overturned" in body or "overturned" in body
