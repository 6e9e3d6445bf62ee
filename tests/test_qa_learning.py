"""Peer learning: teaching cases only from learning candidates; conferences with agenda,
invitations and minutes (attendance, learning points, improvement actions)."""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa

from qaportal.models import (
    AuditEvent,
    Conference,
    Notification,
    StudyAccess,
    TeachingCase,
)
from qaportal.qa import cases as cs
from qaportal.qa import learning
from tests.factories import make_review, make_study, make_user


@pytest.fixture
def w(db):
    reader = make_user(["radiologist"])
    reviewer = make_user(["reviewer"])
    qa = make_user(["qa_manager"])
    a1, a2 = make_user(["radiologist"]), make_user(["reviewer"])
    flagged = make_review(make_study(reader).read, reviewer, "2a", learning_case=True)
    plain = make_review(make_study(reader).read, reviewer, "1")
    closed = make_review(make_study(reader).read, reviewer, "3b")
    case = cs.open_case(closed, by=reviewer)
    member = make_user(["reviewer"])
    cs.assign_committee(case, [member], qa)
    cs.cast_vote(case, member, "3b", "Missed.")
    cs.record_decision(case, qa, final_score="3b", outcome="upheld", rationale="Seen.")
    cs.acknowledge(case, reader, "Thanks")
    open_review = make_review(make_study(reader).read, reviewer, "3a")
    cs.open_case(open_review, by=reviewer)
    db.session.commit()
    return {"qa": qa, "a1": a1, "a2": a2, "flagged": flagged, "plain": plain,
            "closed": closed, "open": open_review}


def _events(db, action):
    return db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)).all()


# --- teaching cases only from learning candidates ------------------------------------------

def test_learning_candidates_are_flagged_reviews_and_closed_cases(db, w):
    ids = {r.id for r in learning.learning_candidates()}
    assert ids == {w["flagged"].id, w["closed"].id}
    assert learning.teaching_refusal(w["flagged"]) is None
    assert "good learning cases" in learning.teaching_refusal(w["plain"])
    assert "good learning cases" in learning.teaching_refusal(w["open"])


@pytest.mark.parametrize("which", ["plain", "open"])
def test_teaching_new_refuses_a_review_that_is_not_a_candidate(client, auth, db, w, which):
    review = w[which]
    auth.login(w["qa"])
    resp = client.get(f"/qa/teaching/new/{review.id}")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/qa/teaching")
    resp = client.post(f"/qa/teaching/new/{review.id}", data={
        "title": "Nodule", "teaching_point": "Look again.", "category": ""},
        follow_redirects=True)
    assert f"Review {review.id} cannot become a teaching case" in resp.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(TeachingCase)) == 0


@pytest.mark.parametrize("which", ["flagged", "closed"])
def test_teaching_new_accepts_a_candidate_once(client, auth, db, w, which):
    review = w[which]
    auth.login(w["qa"])
    assert client.get(f"/qa/teaching/new/{review.id}").status_code == 200
    resp = client.post(f"/qa/teaching/new/{review.id}", data={
        "title": "Apical nodule", "teaching_point": "Check the apices.",
        "category": "perceptual"})
    assert resp.status_code == 302
    tc = db.session.scalars(sa.select(TeachingCase)).one()
    assert tc.review_id == review.id and tc.teaching_point == "Check the apices."
    resp = client.get(f"/qa/teaching/new/{review.id}", follow_redirects=True)
    assert "already a teaching case" in resp.get_data(as_text=True)


# --- conferences: agenda, invitations, minutes ----------------------------------------------

def test_record_minutes_saves_attendance_points_and_actions(db, w):
    conf = learning.create_conference(w["qa"], title="April", held_on=date(2026, 4, 2))
    learning.invite(conf, [w["a1"], w["a2"]], w["qa"])
    learning.record_minutes(conf, w["qa"], attended_ids=[w["a1"].id],
                            learning_points="  Apices are a blind spot.  ",
                            improvement_actions="\nAdd an apices check to the template.\n")
    db.session.commit()
    attended = {a.user_id: a.attended for a in conf.attendees}
    assert attended == {w["a1"].id: True, w["a2"].id: False}
    assert conf.learning_points == "Apices are a blind spot."
    assert conf.improvement_actions == "Add an apices check to the template."
    event = _events(db, "learning.minutes_recorded")[-1]
    assert event.details["attended"] == [w["a1"].id]
    # Recording again replaces the attendance, not adds to it.
    learning.record_minutes(conf, w["qa"], attended_ids=[w["a2"].id], learning_points="",
                            improvement_actions="")
    assert {a.user_id: a.attended for a in conf.attendees} == {w["a1"].id: False,
                                                               w["a2"].id: True}
    assert conf.learning_points == "" and conf.improvement_actions == ""


def test_conference_pages_create_agenda_invite_and_minutes(client, auth, db, w):
    tc = learning.create_teaching_case(w["flagged"].assignment.read.study, w["qa"],
                                       title="Apical nodule", teaching_point="Apices.",
                                       category="perceptual", review=w["flagged"])
    db.session.commit()
    auth.login(w["qa"])
    resp = client.post("/qa/conferences", data={"title": "May conference",
                                                "held_on": "2026-05-07"})
    assert resp.status_code == 302
    conf = db.session.scalars(sa.select(Conference)).one()
    assert resp.headers["Location"].endswith(f"/qa/conferences/{conf.id}")
    assert conf.title == "May conference" and conf.held_on == date(2026, 5, 7)
    url = f"/qa/conferences/{conf.id}"

    assert client.post(url, data={"form": "nonsense"}).status_code == 400
    assert client.post(url, data={"form": "agenda", "teaching_case_id": "999"}).status_code \
        == 400  # not a choice
    assert client.post(url, data={"form": "agenda", "teaching_case_id": str(tc.id)}) \
        .status_code == 302
    assert client.post(url, data={"form": "invite", "users": [w["a1"].id, w["a2"].id]}) \
        .status_code == 302
    db.session.expire_all()
    conf = db.session.get(Conference, conf.id)
    assert [c.teaching_case_id for c in conf.cases] == [tc.id]
    assert {a.user_id for a in conf.attendees} == {w["a1"].id, w["a2"].id}
    grants = db.session.scalars(sa.select(StudyAccess).where(
        StudyAccess.source_type == "teaching_case")).all()
    assert {(g.user_id, g.mode) for g in grants} == {(w["a1"].id, "deidentified"),
                                                     (w["a2"].id, "deidentified")}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification).where(
        Notification.user_id == w["a1"].id)) >= 1

    assert client.post(url, data={"form": "minutes", "attended": [w["a1"].id],
                                  "learning_points": "Apices are a blind spot.",
                                  "improvement_actions": "Add an apices checklist item."}) \
        .status_code == 302
    db.session.expire_all()
    conf = db.session.get(Conference, conf.id)
    assert {a.user_id: a.attended for a in conf.attendees} == {w["a1"].id: True,
                                                               w["a2"].id: False}
    assert conf.learning_points == "Apices are a blind spot."
    assert conf.improvement_actions == "Add an apices checklist item."
    for action in ("learning.conference_created", "learning.case_added", "learning.invited",
                   "learning.minutes_recorded"):
        assert _events(db, action), action
    page = client.get(url).get_data(as_text=True)
    assert "Apices are a blind spot." in page and "Add an apices checklist item." in page
    # A non-attendee cannot be marked as attended (not a choice): the form comes back.
    outsider = make_user(["radiologist"])
    db.session.commit()
    assert client.post(url, data={"form": "minutes", "attended": [outsider.id]}) \
        .status_code == 400
    # The attendees read the minutes on their conference page.
    auth.logout()
    auth.login(w["a1"])
    body = client.get(f"/reviews/conferences/{conf.id}").get_data(as_text=True)
    assert "Apices are a blind spot." in body and "Add an apices checklist item." in body


# --- list pages are audited ------------------------------------------------------------------

@pytest.mark.parametrize(("role", "url", "action"), [
    ("reviewer", "/reviews/committee", "discrepancy.committee_list_viewed"),
    ("radiologist", "/reviews/feedback", "discrepancy.feedback_list_viewed"),
    ("radiologist", "/reviews/conferences", "learning.conference_list_viewed"),
    ("qa_manager", "/qa/rules", "qa.rules_viewed"),
    ("qa_manager", "/qa/teaching", "learning.teaching_list_viewed"),
    ("qa_manager", "/qa/conferences", "learning.conference_list_viewed"),
])
def test_list_pages_write_an_audit_entry(client, login_as, db, role, url, action):
    user = login_as(role)
    assert client.get(url).status_code == 200
    events = [e for e in _events(db, action) if e.actor_id == user.id]
    assert len(events) == 1, (url, action)
    assert "count" in events[0].details
