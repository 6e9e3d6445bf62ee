"""Blind stays blind across workflows (qaportal/blind_roles.py): a blind reviewer, committee
member or teaching attendee never takes a second opinion or a share on the study; whoever
read, uploaded, requested or gave an opinion on it is never its blind reviewer or committee
member; a later grant never unblinds; the case packet never itemises a blind participant."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from qaportal.blind_roles import RoleConflict, blind_holder_ids, knows_reader_ids
from qaportal.models import AuditEvent, Notification, ReviewAssignment, StudyAccess
from qaportal.opinions import service as opinions
from qaportal.opinions.eligibility import colleagues, pool_members
from qaportal.permissions import is_blind_access
from qaportal.qa import cases as cs
from qaportal.qa import learning, sampling
from qaportal.reports.case_evidence import audit_excerpt
from qaportal.reviews import service as reviews
from qaportal.studies.access import grant_access, revoke_access
from tests.factories import (
    make_assignment,
    make_opinion_record,
    make_opinion_request,
    make_rule,
    make_study,
    make_user,
)

READER_NAME = "Dr Xavier Readwell"


@pytest.fixture
def w(db):
    """A study uploaded by one radiologist, read by another, reviewed blind by a third who
    is also a licensed neuro radiologist (so a neuro pool would include them)."""
    uploader = make_user(["radiologist"], subspecialties=["body"], licenses=["CA"],
                         full_name="Dr Uma Uploader")
    reader = make_user(["radiologist"], full_name=READER_NAME)
    reviewer = make_user(["reviewer", "radiologist"], subspecialties=["neuro"],
                         licenses=["CA"], full_name="Dr Blair Blindreviewer")
    peer = make_user(["radiologist"], subspecialties=["neuro"], licenses=["CA"],
                     full_name="Dr Pat Peer")
    qa = make_user(["qa_manager"])
    study = make_study(uploader, reader=reader)
    assignment = make_assignment(study.read, reviewer, deidentified=False)
    db.session.commit()
    return {"uploader": uploader, "reader": reader, "reviewer": reviewer, "peer": peer,
            "qa": qa, "study": study, "assignment": assignment}


def _opinion_notices(db, kind="opinion.new") -> set[int]:
    return set(db.session.scalars(sa.select(Notification.user_id)
                                  .where(Notification.kind == kind)))


def _assert_blind_study_page(client, study, reader) -> None:
    page = client.get(f"/studies/{study.id}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Read by" not in text and reader.full_name not in text


# --- The reproductions ------------------------------------------------------------------

def test_blind_reviewer_is_not_notified_offered_or_allowed_to_claim(client, auth, db, w):
    req = make_opinion_request(w["study"], w["uploader"], pool="neuro")
    db.session.commit()
    notified = _opinion_notices(db)
    assert w["peer"].id in notified and w["reviewer"].id not in notified
    assert w["reviewer"].id not in {u.id for u in pool_members(w["study"], w["uploader"].id,
                                                               "neuro")}
    auth.login(w["reviewer"])
    assert client.get(f"/opinions/{req.id}").status_code == 404
    assert f"/opinions/{req.id}" not in client.get("/opinions/").get_data(as_text=True)
    resp = client.post(f"/opinions/{req.id}/claim", follow_redirects=True)
    text = resp.get_data(as_text=True)
    assert "you hold a blind role on its study" in text
    db.session.refresh(req)
    assert req.status == "open" and req.consultant_id is None
    assert not db.session.scalars(sa.select(StudyAccess).where(
        StudyAccess.source_type == "opinion_request")).all()
    with pytest.raises(opinions.OpinionError, match="blind role"):
        opinions.claim(req, w["reviewer"])
    db.session.rollback()
    _assert_blind_study_page(client, w["study"], w["reader"])


def test_blind_reviewer_is_not_offered_by_name_nor_listed_as_not_offered(client, auth, db, w):
    cands = {c.user.id: c for c in colleagues(w["study"], w["uploader"])}
    assert not cands[w["reviewer"].id].eligible and cands[w["peer"].id].eligible
    with pytest.raises(opinions.OpinionError) as err:
        make_opinion_request(w["study"], w["uploader"], colleague=w["reviewer"])
    assert "blind" not in str(err.value)  # the requester is not told who reviews blind
    db.session.rollback()
    auth.login(w["uploader"])
    page = client.get(f"/opinions/new/{w['study'].id}").get_data(as_text=True)
    assert w["peer"].full_name in page
    assert w["reviewer"].full_name not in page and "blind" not in page.lower()


def test_committee_member_and_teaching_attendee_cannot_take_an_opinion(db, w):
    member = make_user(["radiologist"], subspecialties=["neuro"], licenses=["CA"])
    attendee = make_user(["radiologist"], subspecialties=["neuro"], licenses=["CA"])
    review = reviews.submit(_revealed(w["assignment"]), w["reviewer"], score="3b",
                            category="perceptual", comment="Missed it.", learning_case=True)
    cs.assign_committee(review.case, [member], w["qa"])
    tc = learning.create_teaching_case(w["study"], w["qa"], title="Case", teaching_point="Look.",
                                       category="perceptual", review=review)
    conf = learning.create_conference(w["qa"], title="Conf", held_on=tc.created_at.date())
    learning.add_case(conf, tc, w["qa"])
    learning.invite(conf, [attendee], w["qa"])
    db.session.commit()
    members = {u.id for u in pool_members(w["study"], w["uploader"].id, "neuro")}
    assert members == {w["peer"].id}
    req = make_opinion_request(w["study"], w["uploader"], pool="neuro")
    for user in (member, attendee):
        with pytest.raises(opinions.OpinionError, match="blind role"):
            opinions.claim(req, user)


def _revealed(assignment):
    reviews.reveal(assignment, "Impression.", assignment.reviewer)
    return assignment


def test_case_packet_excerpt_lists_only_the_requests_own_participants(client, auth, db, w):
    """Data from before the rule: the blind reviewer became the request's consultant. The
    requester's packet still never itemises the reviewer's views of the study."""
    auth.login(w["reviewer"])
    _assert_blind_study_page(client, w["study"], w["reader"])  # audited: study.viewed
    auth.logout()
    auth.login(w["uploader"])
    assert client.get(f"/studies/{w['study'].id}").status_code == 200
    req = make_opinion_record(w["study"], w["uploader"], w["reviewer"])
    db.session.commit()
    excerpt = audit_excerpt(req)
    actors = {e.actor_id for e in excerpt.events}
    assert w["uploader"].id in actors
    assert w["reviewer"].id not in actors
    assert excerpt.others >= 1  # counted, not named
    reviewer_views = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.actor_id == w["reviewer"].id, AuditEvent.action == "study.viewed"))
    assert reviewer_views >= 1


# --- A later grant never unblinds -------------------------------------------------------

def test_a_later_full_grant_never_unblinds_the_reviewer(client, auth, db, w):
    study, reviewer = w["study"], w["reviewer"]
    with pytest.raises(RoleConflict):
        grant_access(study, reviewer, mode="full", source=("opinion_request", 999), by=None)
    db.session.rollback()
    # A share written before this rule existed, then the review's own grant withdrawn.
    db.session.add(StudyAccess(study_id=study.id, user_id=reviewer.id, mode="full",
                               source_type="opinion_request", source_id=999))
    revoke_access(study, reviewer, source=("review_assignment", w["assignment"].id), by=None)
    db.session.commit()
    assert is_blind_access(reviewer, study)
    auth.login(reviewer)
    _assert_blind_study_page(client, study, w["reader"])
    assert not is_blind_access(w["qa"], study) and not is_blind_access(w["uploader"], study)


def test_grants_recheck_the_rule_in_both_directions(db, w):
    study = w["study"]
    requester = make_user(["radiologist", "reviewer"])
    make_opinion_record(study, requester, None)
    other = make_study(w["uploader"], reader=w["reader"])
    a = ReviewAssignment(read_id=study.read.id, reviewer_id=requester.id, source="sample",
                         run_id=w["assignment"].run_id, deidentified=True,
                         assigned_at=w["assignment"].assigned_at, due_at=w["assignment"].due_at)
    db.session.add(a)
    db.session.flush()
    with pytest.raises(RoleConflict):
        grant_access(study, requester, mode="deidentified", source=("review_assignment", a.id),
                     by=None)
    db.session.rollback()
    # Teaching conferences are anonymous: the reader may attend one on their own read.
    grant_access(study, w["reader"], mode="deidentified", source=("teaching_case", 1), by=None)
    # The rule is per study: the blind reviewer of one study may answer on another.
    grant_access(other, w["reviewer"], mode="full", source=("opinion_request", 5), by=None)
    assert w["reviewer"].id in blind_holder_ids(study.id)
    assert {w["uploader"].id, w["reader"].id} <= knows_reader_ids(study.id)


# --- The reverse: who knows the reader is never a blind reviewer or committee member --------

@pytest.fixture
def knowers(db, w):
    """A requester and a consultant on the study, both also reviewers."""
    requester = make_user(["radiologist", "reviewer"], licenses=["CA"])
    consultant = make_user(["radiologist", "reviewer"], subspecialties=["body"],
                           licenses=["CA"])
    req = opinions.create_request(w["study"], requester, priority="routine",
                                  question="Second look?", pool="body")
    opinions.claim(req, consultant)
    db.session.commit()
    return {"requester": requester, "consultant": consultant, "req": req}


def test_sampling_never_picks_someone_who_knows_the_reader(db):
    qa = make_user(["qa_manager"])
    uploader = make_user(["radiologist"])
    reader = make_user(["radiologist", "reviewer"])
    requester = make_user(["radiologist", "reviewer"], licenses=["CA"])
    consultant = make_user(["radiologist", "reviewer"], subspecialties=["body"],
                           licenses=["CA"])
    neutral = make_user(["reviewer"])
    for _ in range(3):  # the busiest reviewer: on load alone the others would be chosen
        make_assignment(make_study(uploader).read, neutral)
    study = make_study(uploader, reader=reader)
    req = opinions.create_request(study, requester, priority="routine",
                                  question="Second look?", pool="body")
    opinions.claim(req, consultant)
    rule = make_rule(qa, percent=100, deidentify=True)
    db.session.commit()
    preview = sampling.preview_run(rule, seed=3)
    chosen = {read.study_id: user for read, user in preview.plan}
    assert chosen[study.id] is not None and chosen[study.id].id == neutral.id
    run = sampling.commit_run(rule, 3, qa, preview.fingerprint)
    db.session.commit()
    reviewer_ids = set(db.session.scalars(sa.select(ReviewAssignment.reviewer_id).where(
        ReviewAssignment.run_id == run.id, ReviewAssignment.read_id == study.read.id)))
    assert reviewer_ids == {neutral.id}


def test_requester_and_consultant_cannot_open_an_adhoc_review(db, w, knowers):
    study = w["study"]
    for user in (knowers["requester"], knowers["consultant"]):
        problem = reviews.adhoc_problem(study.read, user)
        assert problem and "would not be blind" in problem
        with pytest.raises(reviews.ReviewError, match="would not be blind"):
            reviews.open_adhoc(study.read, user)
    # The uploader's own ad-hoc look stays possible, unless they also asked for an opinion.
    uploader = make_user(["radiologist", "reviewer"])
    mine = make_study(uploader, reader=w["reader"])
    assert reviews.adhoc_problem(mine.read, uploader) is None
    asked = make_study(uploader, reader=w["reader"])
    make_opinion_record(asked, uploader, None)
    assert "would not be blind" in reviews.adhoc_problem(asked.read, uploader)


def test_committee_excludes_members_and_whoever_knows_the_reader(client, auth, db, w,
                                                                 knowers):
    review = reviews.submit(_revealed(w["assignment"]), w["reviewer"], score="3b",
                            category="perceptual", comment="Missed it.")
    case = review.case
    m1 = make_user(["reviewer"], full_name="Dr Mia Member")
    m2 = make_user(["radiologist"], full_name="Dr Max Second")
    db.session.commit()
    ids = {u.id for u in cs.committee_candidates(case)}
    for user in (w["reader"], w["reviewer"], w["uploader"], knowers["requester"],
                 knowers["consultant"]):
        assert user.id not in ids
    assert {m1.id, m2.id, w["peer"].id} <= ids
    with pytest.raises(cs.CaseError, match="cannot sit"):
        cs.assign_committee(case, [knowers["consultant"]], w["qa"])
    db.session.rollback()
    cs.assign_committee(case, [m1], w["qa"])
    db.session.commit()
    assert m1.id not in {u.id for u in cs.committee_candidates(case)}
    auth.login(w["qa"])
    page = client.get(f"/qa/cases/{case.id}").get_data(as_text=True)
    offered = set(re.findall(r'name="members"[^>]*value="(\d+)"', page)) | set(
        re.findall(r'value="(\d+)"[^>]*name="members"', page))
    assert str(m2.id) in offered
    for user in (m1, knowers["requester"], knowers["consultant"], w["uploader"]):
        assert str(user.id) not in offered
    cs.assign_committee(case, [m2, w["peer"]], w["qa"])
    db.session.commit()
    page = client.get(f"/qa/cases/{case.id}").get_data(as_text=True)
    assert "Nobody else can be added" in page and 'name="members"' not in page


# --- Committee duty is visible --------------------------------------------------------------

def test_committee_duty_shows_in_nav_and_on_home_for_a_radiologist(client, auth, db, w):
    review = reviews.submit(_revealed(w["assignment"]), w["reviewer"], score="3b",
                            category="perceptual", comment="Missed it.")
    member = make_user(["radiologist"])
    bystander = make_user(["radiologist"])
    cs.assign_committee(review.case, [member], w["qa"])
    db.session.commit()
    auth.login(bystander)
    home = client.get("/").get_data(as_text=True)
    assert 'href="/reviews/committee"' not in home and "Committee cases" not in home
    auth.logout()
    auth.login(member)
    home = client.get("/").get_data(as_text=True)
    assert 'href="/reviews/committee"' in home and ">Committee<" in home
    assert "Committee cases" in home and "waiting for your independent score" in home
    assert client.get("/reviews/committee").status_code == 200
    cs.cast_vote(review.case, member, "3b", "Agree.")
    db.session.commit()
    home = client.get("/").get_data(as_text=True)
    assert "You have scored every open committee case" in home
