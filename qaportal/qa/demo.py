"""Demo step 30: a year of peer review across readers and modalities, cases in every state."""

from __future__ import annotations

import random
import secrets
import uuid
from datetime import timedelta

import sqlalchemy as sa

from qaportal import audit
from qaportal.demo import demo_step
from qaportal.extensions import db
from qaportal.models import (
    CaseEvent,
    CommitteeMember,
    CommitteeVote,
    Conference,
    ConferenceAttendee,
    ConferenceCase,
    DiscrepancyCase,
    OriginalRead,
    Review,
    ReviewAssignment,
    SamplingRule,
    SamplingRun,
    Series,
    Study,
    TeachingCase,
    User,
    utcnow,
)

RULE_NAME = "Demo: routine 5 % sample"
# (email key, name, significant-discrepancy rate, also a reviewer)
READERS = [
    ("reader1", "Dr. Amara Osei", 0.010, False),
    ("reader2", "Dr. Bruno Keller", 0.020, False),
    ("reader3", "Dr. Carmen Ruiz", 0.030, False),
    ("reader4", "Dr. Dmitri Volkov", 0.090, False),
    ("reader5", "Dr. Elif Yildiz", 0.015, True),
    ("reader6", "Dr. Farid Haddad", 0.020, True),
]
EXAMS = [("CT", "CT CHEST W/O CONTRAST", "CHEST"), ("CT", "CT HEAD W/O CONTRAST", "HEAD"),
         ("MR", "MRI BRAIN W/WO", "BRAIN"), ("CR", "XR CHEST 2 VIEWS", "CHEST"),
         ("US", "US ABDOMEN COMPLETE", "ABDOMEN"), ("MG", "MAMMO SCREENING BILAT", "BREAST")]
REPORTS = {"1": "No acute abnormality.", "2a": "Mild degenerative change.",
           "2b": "No focal lesion identified.", "3a": "Unremarkable study.",
           "3b": "No acute findings."}


def _readers(accounts: dict) -> list[User]:
    from qaportal.admin.service import create_user
    from qaportal.demo.accounts import demo_password

    users = []
    password = None
    for key, name, _, reviews in READERS:
        email = f"{key}@demo.qaportal.test"
        user = db.session.scalar(sa.select(User).where(User.email == email))
        if user is None:
            password = password or demo_password()
            roles = ["radiologist", "reviewer"] if reviews else ["radiologist"]
            user = create_user(email, name, roles, password, by=None, must_change=False,
                               subspecialties=["general", "body"])
        users.append(user)
    return users


def _study(owner: User, rng: random.Random, when) -> Study:
    modality, description, body = rng.choice(EXAMS)
    n = rng.randrange(10**6)
    study = Study(
        study_uid=f"2.25.{uuid.uuid4().int}", owner_id=owner.id,
        patient_name=f"DEMO^PATIENT{n:06d}", patient_id=f"DEMO{n:06d}",
        patient_sex=rng.choice("FM"), accession_number=f"DQ{n:08d}",
        study_date=when.date(), study_description=description, modalities=modality,
        body_part=body, jurisdiction="CA", deid_key=secrets.token_hex(32),
        deid_date_shift_days=-rng.randrange(10, 60),
        pseudonym=f"QA-{secrets.token_hex(4).upper()}", series_count=1,
        clinical_history="Demo history.", clinical_question="Any acute abnormality?",
    )
    study.series.append(Series(series_uid=f"2.25.{uuid.uuid4().int}", modality=modality,
                               series_number=1, series_description="AXIAL"))
    return study


def _score(rng: random.Random, rate: float) -> str:
    x = rng.random()
    if x < rate:
        return rng.choice(["2b", "3a", "3b", "3b"])
    if x < rate + 0.04:
        return "2a"
    return "unable" if x > 0.995 else "1"


def _case(review: Review, state: str, rng: random.Random, qa: User, members: list[User],
          opened) -> DiscrepancyCase:
    case = DiscrepancyCase(review=review, status="open", opened_at=opened, status_at=opened)
    case.events.append(CaseEvent(event="opened", at=opened))
    if state == "open":
        return case
    t = opened + timedelta(days=2)
    case.status, case.status_at = "committee", t
    for m in members:
        case.members.append(CommitteeMember(user_id=m.id, added_by_id=qa.id, added_at=t))
    case.events.append(CaseEvent(event="committee_assigned", at=t, by_id=qa.id))
    voters = members[:1] if state == "committee" else members
    final = rng.choice(["3b", "3b", "3a", "2a", "1"]) if state != "committee" else None
    for m in voters:
        t += timedelta(days=1)
        score = final or review.score
        case.votes.append(CommitteeVote(user_id=m.id, round=1, score=score, voted_at=t,
                                        comment="" if score == "1" else "Demo comment."))
        case.events.append(CaseEvent(event="voted", at=t, by_id=m.id))
    if state == "committee":
        return case
    t += timedelta(days=1)
    outcome = ("upheld" if final == review.score else
               "overturned" if final == "1" else "downgraded")
    case.final_score, case.outcome = final, outcome
    case.rationale = "Committee consensus after independent scoring."
    case.status, case.status_at, case.decided_by_id, case.decided_at = "decided", t, qa.id, t
    case.events.append(CaseEvent(event="decided", at=t, by_id=qa.id))
    if state == "disputed":
        t += timedelta(days=1)
        case.reader_response, case.disputed_at = "I believe this is a normal variant.", t
        case.round, case.status, case.status_at = 2, "committee", t
        case.events.append(CaseEvent(event="disputed", at=t, note=case.reader_response))
    elif state == "closed":
        t += timedelta(days=2)
        case.acknowledged_at = case.closed_at = case.status_at = t
        case.status = "closed"
        case.events.append(CaseEvent(event="acknowledged", at=t))
        case.events.append(CaseEvent(event="closed", at=t))
    return case


@demo_step(30)
def seed_reviews(accounts: dict) -> str:
    """Seed a QA history: ~400 reviews, discrepancy cases in every state, a conference."""
    if db.session.scalar(sa.select(SamplingRule.id).where(SamplingRule.name == RULE_NAME)):
        return "Peer review: demo QA history already present"
    rng = random.Random(20240501)  # noqa: S311 -- demo data, not a secret
    qa = accounts["qa_manager"]
    readers = [*_readers(accounts), accounts["radiologist"]]
    rates = [r[2] for r in READERS] + [0.02]
    reviewers = [accounts["reviewer"], accounts["radiologist2"], readers[4], readers[5]]
    now = utcnow()
    rule = SamplingRule(name=RULE_NAME, method="percent", percent=5.0, deidentify=True,
                        due_days=14, created_by_id=qa.id)
    run = SamplingRun(rule=rule, seed=20240501, params={}, candidates=[], selected=[],
                      run_by_id=qa.id, run_at=now - timedelta(days=365))
    db.session.add_all([rule, run])
    db.session.flush()
    run.params = rule.params()
    states = ["open", "committee", "decided", "disputed"]
    sig_reviews: list[tuple[Review, int]] = []
    learning: list[Review] = []
    count = 0
    forced = False
    for i, (reader, rate) in enumerate(zip(readers, rates, strict=True)):
        volume = 40 if reader is accounts["radiologist"] else 60 + 10 * i
        for _ in range(volume):
            days_ago = rng.randrange(1, 360)
            when = now - timedelta(days=days_ago, hours=rng.randrange(24))
            study = _study(reader, rng, when)
            db.session.add(study)
            study.read = OriginalRead(reader_id=reader.id, entered_by_id=reader.id,
                                      finalized_at=when, report_text="")
            reviewer = rng.choice([r for r in reviewers if r.id != reader.id])
            a = ReviewAssignment(read=study.read, reviewer_id=reviewer.id, source="sample",
                                 run_id=run.id, assigned_by_id=qa.id,
                                 assigned_at=when + timedelta(days=1),
                                 due_at=when + timedelta(days=15))
            db.session.add(a)
            count += 1
            if days_ago < 20:  # recent reads are still with the reviewers (some overdue)
                study.read.report_text = REPORTS["1"]
                continue
            score = _score(rng, rate)
            if reader is accounts["radiologist"] and not forced and days_ago < 200:
                score, forced = "3b", True  # so the demo radiologist has feedback to read
            study.read.report_text = REPORTS.get(score, REPORTS["1"])
            done = when + timedelta(days=rng.randrange(2, 12))
            a.status, a.revealed_at, a.submitted_at = "submitted", done, done
            a.impression = "Demo impression recorded before the reveal."
            a.impression_at = done
            discrepancy = score in ("2a", "2b", "3a", "3b")
            review = Review(assignment=a, score=score, submitted_at=done,
                            category=rng.choice(["perceptual", "interpretive",
                                                 "communication", "technical"])
                            if discrepancy else None,
                            comment="Demo discrepancy comment." if discrepancy else "",
                            unable_reason="Incomplete series." if score == "unable" else "",
                            learning_case=discrepancy and rng.random() < 0.3)
            db.session.add(review)
            if score in ("2b", "3a", "3b"):
                sig_reviews.append((review, days_ago))
            if review.learning_case:
                learning.append(review)
    db.session.flush()
    cycle = 0
    for review, days_ago in sig_reviews:
        reader_id = review.assignment.read.reader_id
        members = [u for u in reviewers + readers[:3]
                   if u.id not in (reader_id, review.assignment.reviewer_id)][:2]
        if reader_id == accounts["radiologist"].id and days_ago < 200:
            state = "decided"  # feedback waiting for the demo radiologist
        elif days_ago > 120:
            state = "closed"
        else:
            state, cycle = states[cycle % 4], cycle + 1
        opened = review.submitted_at
        db.session.add(_case(review, state, rng, qa, members, opened))
    db.session.flush()
    teaching = []
    for review in learning[:3]:
        tc = TeachingCase(study_id=review.assignment.read.study_id, review_id=review.id,
                          title=f"{review.assignment.read.study.study_description}: "
                                "a teaching case",
                          teaching_point="Review the search pattern for this exam type.",
                          category=review.category, created_by_id=qa.id)
        db.session.add(tc)
        teaching.append(tc)
    conf = Conference(title="Quarterly peer-learning conference",
                      held_on=(now - timedelta(days=30)).date(),
                      learning_points="Search patterns for subtle findings.",
                      improvement_actions="Add a checklist for lung apices.",
                      created_by_id=qa.id)
    db.session.add(conf)
    db.session.flush()
    for pos, tc in enumerate(teaching):
        conf.cases.append(ConferenceCase(teaching_case_id=tc.id, position=pos))
    for user in readers[:4]:
        conf.attendees.append(ConferenceAttendee(user_id=user.id, attended=True))
    db.session.flush()
    from qaportal.studies.access import grant_access

    for user in readers[:4]:
        for tc in teaching:
            grant_access(db.session.get(Study, tc.study_id), user, mode="deidentified",
                         source=("teaching_case", tc.id), by=qa)
    audit.record("demo.qa_seeded", actor=qa, assignments=count, cases=len(sig_reviews))
    return (f"Peer review: {count} sampled reads, {len(sig_reviews)} discrepancy cases, "
            f"{len(teaching)} teaching cases, 1 conference; readers reader1..6@demo.qaportal.test")
