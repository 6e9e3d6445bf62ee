"""Demo step 30: a year of peer review across readers and modalities, cases in every state."""

from __future__ import annotations

import random
import secrets
from datetime import timedelta

import sqlalchemy as sa

from qaportal import audit
from qaportal.demo import images
from qaportal.demo.steps import demo_step
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
    SamplingRule,
    SamplingRun,
    Study,
    TeachingCase,
    User,
    utcnow,
)

RULE_NAME = "Demo: routine sample per reader and month"
OLD_RULE_NAMES = ("Demo: routine 5 % sample",)  # seeded by earlier versions: not again
# (email key, name, significant-discrepancy rate, also a reviewer)
READERS = [
    ("reader1", "Dr. Amara Osei", 0.010, False),
    ("reader2", "Dr. Bruno Keller", 0.020, False),
    ("reader3", "Dr. Carmen Ruiz", 0.030, False),
    ("reader4", "Dr. Dmitri Volkov", 0.090, False),
    ("reader5", "Dr. Elif Yildiz", 0.015, True),
    ("reader6", "Dr. Farid Haddad", 0.020, True),
]
# Exam kinds of the history (qaportal.demo.images), repeated by how often they are read.
EXAM_MIX = ["ct_head"] * 3 + ["ct_chest"] * 3 + ["mr_brain"] * 2 + [
    "xr_chest", "xr_tibia", "mr_shoulder", "mr_liver", "nm_bone"]
# What a discrepant read said instead, and the reviewer's comment (by exam kind).
MISSED = {
    "ct_head": ("Chronic left subdural collection. No midline shift.",
                "Acute component and midline shift not reported."),
    "ct_chest": ("Unremarkable CT of the chest.",
                 "Apical pleuroparenchymal opacity not described; follow-up advisable."),
    "mr_brain": ("Normal MRI of the brain.", "Small periventricular lesion not reported."),
    "xr_chest": ("No acute cardiopulmonary disease.",
                 "Subtle right mid-zone opacity not reported."),
    "xr_tibia": ("No fracture. Normal bones.",
                 "Distal tibial non-ossifying fibroma not described."),
    "mr_shoulder": ("Normal MRI of the shoulder.", "Supraspinatus tendinosis not reported."),
    "mr_liver": ("Simple hepatic cyst.", "Solid heterogeneous lesion called a simple cyst."),
    "nm_bone": ("Degenerative uptake only.",
                "Focal rib uptake not mentioned; correlation advised."),
}


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


def _study(owner: User, rng: random.Random, when, key: str, store) -> tuple[Study, str]:
    """Return a study of the exam kind with its own copy of the kind's real image."""
    n = rng.randrange(10**6)
    return images.add_study(
        owner.id, key, store, patient=(images.patient_name(rng), f"DEMO{n:06d}"),
        accession=f"DQ{n:08d}", sex=rng.choice("FM"), when=when.date(),
        jurisdiction="CA", deid_key=secrets.token_hex(32),
        deid_date_shift_days=-rng.randrange(10, 60),
        pseudonym=f"QA-{secrets.token_hex(4).upper()}",
        clinical_history=images.HISTORIES[key], clinical_question=images.EXAMS[key].question)


def _reviewer_for(key: str, reader: User, reviewers: list[User],
                  rng: random.Random) -> User:
    """Pick a reviewer of the exam's subspecialty (else a general one), never the reader."""
    others = [r for r in reviewers if r.id != reader.id]
    wanted = images.EXAMS[key].subspecialty
    fit = [r for r in others if wanted in r.subspecialty_names]
    return rng.choice(fit or [r for r in others if "general" in r.subspecialty_names] or others)


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
    """Seed a QA history: ~350 sampled reads with images, cases in every state, a conference."""
    from qaportal.qa.sampling import assign_sampled, replay_run
    from qaportal.studies.access import grant_access
    from qaportal.studies.storage import image_store

    if db.session.scalar(sa.select(SamplingRule.id).where(
            SamplingRule.name.in_((RULE_NAME, *OLD_RULE_NAMES)))):
        return "Peer review: demo QA history already present"
    rng = random.Random(20240501)  # noqa: S311 -- demo data, not a secret
    qa = accounts["qa_manager"]
    readers = [*_readers(accounts), accounts["radiologist"]]
    rates = [r[2] for r in READERS] + [0.02]
    reviewers = [accounts["reviewer"], accounts["radiologist2"], readers[4], readers[5]]
    kinds = [k for k in EXAM_MIX if images.available(k)]
    store, keys = image_store(), []
    now = utcnow()
    # Each reader's month: every read of it is sampled (the demo holds only sampled reads).
    rule = SamplingRule(name=RULE_NAME, method="per_reader_month", per_reader=1,
                        deidentify=True, due_days=14, created_by_id=qa.id)
    run = SamplingRun(rule=rule, seed=20240501, params={}, candidates=[], selected=[],
                      run_by_id=qa.id, run_at=now - timedelta(days=365))
    db.session.add_all([rule, run])
    plan = []
    for i, (reader, rate) in enumerate(zip(readers, rates, strict=True)):
        volume = 30 if reader is accounts["radiologist"] else 35 + 7 * i
        for _ in range(volume):
            days_ago = rng.randrange(1, 360)
            when = now - timedelta(days=days_ago, hours=rng.randrange(24))
            key = rng.choice(kinds)
            study, storage_key = _study(reader, rng, when, key, store)
            keys.append(storage_key)
            study.read = OriginalRead(reader_id=reader.id, entered_by_id=reader.id,
                                      finalized_at=when, report_text=images.EXAMS[key].report)
            plan.append((study, reader, rate, days_ago, when, key))
    store.sync(keys)  # the files are on disk before any row names them
    db.session.flush()
    months: dict[tuple[int, str], int] = {}
    candidates = []
    for study, reader, *rest in plan:
        month = rest[-2].strftime("%Y-%m")
        months[(reader.id, month)] = months.get((reader.id, month), 0) + 1
        candidates.append([study.read.id, reader.id, month])
    rule.per_reader = max(months.values())
    run.params, run.candidates = rule.params(), candidates
    run.selected = sorted(c[0] for c in candidates)
    states = ["open", "committee", "decided", "disputed"]
    sig_reviews: list[tuple[Review, int]] = []
    learning: list[Review] = []
    forced = False
    for study, reader, rate, days_ago, when, key in plan:
        read = study.read
        reviewer = _reviewer_for(key, reader, reviewers, rng)
        # The same service path as a committed run: assignment and (de-identified) access.
        a = assign_sampled(read, reviewer, run, qa, when + timedelta(days=1))
        if days_ago < 20:  # recent reads are still with the reviewers (some overdue)
            continue
        score = _score(rng, rate)
        if reader is accounts["radiologist"] and not forced and days_ago < 200:
            score, forced = "3b", True  # so the demo radiologist has feedback to read
        discrepancy = score in ("2a", "2b", "3a", "3b")
        if discrepancy:
            read.report_text = MISSED[key][0]
        done = when + timedelta(days=rng.randrange(2, 12))
        a.status, a.revealed_at, a.submitted_at = "submitted", done, done
        a.impression = "Impression recorded before the original report was revealed."
        a.impression_at = done
        review = Review(assignment=a, score=score, submitted_at=done,
                        category=rng.choice(["perceptual", "interpretive",
                                             "communication", "technical"])
                        if discrepancy else None,
                        comment=MISSED[key][1] if discrepancy else "",
                        unable_reason="Incomplete series." if score == "unable" else "",
                        learning_case=discrepancy and rng.random() < 0.3)
        db.session.add(review)
        if score in ("2b", "3a", "3b"):
            sig_reviews.append((review, days_ago))
        if review.learning_case:
            learning.append(review)
    count = len(plan)
    if replay_run(run) != run.selected:  # the run page must be able to say "reproducible"
        raise RuntimeError("demo sampling run does not replay")
    db.session.flush()
    cycle, cases = 0, []
    # Most recent first, so that the cases in every state are the recent ones.
    for review, days_ago in sorted(sig_reviews, key=lambda item: item[1]):
        reader_id = review.assignment.read.reader_id
        members = [u for u in reviewers + readers[:3]
                   if u.id not in (reader_id, review.assignment.reviewer_id)][:2]
        if reader_id == accounts["radiologist"].id and days_ago < 200:
            state = "decided"  # feedback waiting for the demo radiologist
        elif days_ago > 120 and cycle >= len(states):
            state = "closed"
        else:
            state, cycle = states[cycle % 4], cycle + 1
        opened = review.submitted_at
        cases.append(_case(review, state, rng, qa, members, opened))
        db.session.add(cases[-1])
    db.session.flush()
    for case in cases:  # members see the images as assign_committee would let them
        for m in case.members:
            grant_access(case.review.assignment.read.study, db.session.get(User, m.user_id),
                         mode="deidentified", source=("committee_review", case.id), by=qa)
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
    for user in readers[:4]:
        for tc in teaching:
            grant_access(db.session.get(Study, tc.study_id), user, mode="deidentified",
                         source=("teaching_case", tc.id), by=qa)
    audit.record("demo.qa_seeded", actor=qa, assignments=count, cases=len(sig_reviews))
    return (f"Peer review: {count} sampled reads, {len(sig_reviews)} discrepancy cases, "
            f"{len(teaching)} teaching cases, 1 conference; readers reader1..6@demo.qaportal.test")
