"""Blinding: the reader's name appears nowhere a reviewer or committee member can reach,
and the reviewer's name nowhere the reader can reach."""

from __future__ import annotations

import pytest

from qaportal.qa import cases as case_service
from qaportal.qa import learning
from qaportal.reviews import service
from tests.factories import make_assignment, make_study, make_user

READER = "Zebulon Quirkfeather"
REVIEWER = "Ottoline Vantablack"
MEMBER = "Peregrine Snodgrass"
OTHER = "Hieronymus Bellweather"


def _absent(text: str, *names: str) -> None:
    low = text.lower()
    for name in names:
        for part in name.lower().split():
            assert part not in low, f"{part!r} leaked"


@pytest.fixture(params=[True, False], ids=["deidentified", "full"])
def world(request, db):
    reader = make_user(["radiologist"], full_name=READER, email="zq@example.test")
    reviewer = make_user(["reviewer", "radiologist"], full_name=REVIEWER,
                         email="ov@example.test")
    member = make_user(["reviewer"], full_name=MEMBER, email="ps@example.test")
    qa = make_user(["qa_manager"])
    study = make_study(reader, report=f"No acute findings.\nDictated by Dr. {READER}.",
                       clinical_history="Referred after consult with Dr. Quirkfeather.")
    a = make_assignment(study.read, reviewer, deidentified=request.param)
    # A second case where the reviewer sits on the committee.
    other = make_study(reader, report=f"Signed: {READER}")
    other_reviewer = make_user(["reviewer"], full_name=OTHER)
    a2 = make_assignment(other.read, other_reviewer)
    service.reveal(a2, f"I think {READER} missed it", other_reviewer)
    r2 = service.submit(a2, other_reviewer, score="3b", category="perceptual",
                        comment=f"{READER} missed the nodule")
    case_service.assign_committee(r2.case, [reviewer, member], qa)
    db.session.commit()
    return {"reader": reader, "reviewer": reviewer, "member": member, "qa": qa, "a": a,
            "study": study, "case": r2.case, "other": other}


def _reviewer_pages(client, w):
    a, case = w["a"], w["case"]
    urls = ["/", "/reviews/", "/reviews/assignments.json", f"/reviews/{a.id}",
            f"/reviews/{a.id}/record.txt", "/studies/", f"/studies/{w['study'].id}",
            f"/studies/{w['other'].id}", "/reviews/committee", f"/reviews/committee/{case.id}"]
    pages = {}
    for url in urls:
        resp = client.get(url)
        assert resp.status_code == 200, (url, resp.status_code)
        pages[url] = resp.get_data(as_text=True)
    return pages


def test_clinical_notes_naming_the_reader_are_scrubbed_on_review_pages(client, auth, db,
                                                                      world):
    w = world
    auth.login(w["reviewer"])
    body = client.get(f"/reviews/{w['a'].id}").get_data(as_text=True)
    assert "Referred after consult with Dr. [name withheld]." in body
    _absent(body, READER)


def test_reader_name_never_reaches_the_reviewer(client, auth, db, world):
    w = world
    auth.login(w["reviewer"])
    for url, body in _reviewer_pages(client, w).items():
        _absent(body, READER)
        assert url  # every page checked
    a = w["a"]
    client.post(f"/reviews/{a.id}/reveal", data={"impression": "Nodule"})
    pages = _reviewer_pages(client, w)
    assert "No acute findings." in pages[f"/reviews/{a.id}"]  # the report is revealed...
    assert "[name withheld]" in pages[f"/reviews/{a.id}"]  # ...with its signature scrubbed
    for body in pages.values():
        _absent(body, READER)
    client.post(f"/reviews/{a.id}/submit", data={"score": "2a", "category": "interpretive",
                                                 "comment": "Subtle", "learning_case": "y"})
    client.post(f"/reviews/committee/{w['case'].id}/vote", data={"score": "3b",
                                                                 "comment": "Agree"})
    for body in _reviewer_pages(client, w).values():
        _absent(body, READER)


def test_committee_member_sees_neither_reader_nor_reviewer(client, auth, db, world):
    w = world
    auth.login(w["member"])
    body = client.get(f"/reviews/committee/{w['case'].id}").get_data(as_text=True)
    assert "missed the nodule" in body
    _absent(body, READER, OTHER, REVIEWER)
    body = client.get(f"/studies/{w['other'].id}").get_data(as_text=True)
    _absent(body, READER)


def test_reader_never_learns_who_reviewed(client, auth, db, world):
    w = world
    case = w["case"]
    case_service.cast_vote(case, w["reviewer"], "3b", f"Agree with {MEMBER}")
    case_service.cast_vote(case, w["member"], "3a", "Visible in retrospect, Ottoline said.")
    case_service.record_decision(case, w["qa"], final_score="3a", outcome="downgraded",
                                 rationale=f"{REVIEWER} and the committee agree it is subtle.")
    db.session.commit()
    auth.login(w["reader"])
    for url in ("/", "/reviews/feedback", f"/reviews/feedback/{case.id}"):
        resp = client.get(url)
        assert resp.status_code == 200
        _absent(resp.get_data(as_text=True), REVIEWER, MEMBER, OTHER)
    body = client.get(f"/reviews/feedback/{case.id}").get_data(as_text=True)
    assert "3a" in body and "subtle" in body


def test_teaching_cases_and_conference_are_anonymous(client, auth, db, world):
    w = world
    case = w["case"]
    review = case.review
    with pytest.raises(learning.LearningError):
        learning.create_teaching_case(w["other"], w["qa"], title="Missed nodule",
                                      teaching_point=f"{READER} missed it", category=None,
                                      review=review)
    tc = learning.create_teaching_case(w["other"], w["qa"], title="Missed nodule",
                                       teaching_point="Look at the apices.",
                                       category="perceptual", review=review)
    conf = learning.create_conference(w["qa"], title="March conference",
                                      held_on=w["a"].assigned_at.date())
    learning.add_case(conf, tc, w["qa"])
    attendee = make_user(["radiologist"])
    learning.invite(conf, [attendee], w["qa"])
    db.session.commit()
    auth.login(attendee)
    body = client.get(f"/reviews/conferences/{conf.id}").get_data(as_text=True)
    assert "Look at the apices." in body
    _absent(body, READER, OTHER, REVIEWER, MEMBER)
    study_page = client.get(f"/studies/{w['other'].id}")
    assert study_page.status_code == 200
    _absent(study_page.get_data(as_text=True), READER)
    assert "de-identified" in study_page.get_data(as_text=True)


def test_qa_manager_sees_both_identities_and_is_audited(client, auth, db, world):
    import sqlalchemy as sa

    from qaportal.models import AuditEvent

    w = world
    auth.login(w["qa"])
    body = client.get(f"/qa/cases/{w['case'].id}").get_data(as_text=True)
    assert READER in body and OTHER in body
    actions = db.session.scalars(sa.select(AuditEvent.action)).all()
    assert "qa.identities_viewed" in actions
