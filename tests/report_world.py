"""A small department with known peer-review numbers, for the OPPE and department reports.

Distinctive names are planted for everyone who must NOT appear in an OPPE packet: the
reviewers, the committee members and the other readers.
"""

from __future__ import annotations

from datetime import date, timedelta

from qaportal.extensions import db
from qaportal.models import utcnow
from qaportal.qa import cases as cs
from tests.factories import (
    make_certification,
    make_opinion_record,
    make_privilege,
    make_review,
    make_study,
    make_user,
)

REVIEWER_NAMES = ("Zebulon Reviewerson", "Xanthe Scorekeeper")
COMMITTEE_NAMES = ("Montgomery Committeeman", "Ophelia Adjudicator")
OTHER_READERS = ("Peregrine Otherreader", "Quintessa Colleague")


def _decide(case, members, qa, score, outcome):
    cs.assign_committee(case, members, qa)
    for m in members:
        cs.cast_vote(case, m, score, "Committee view.")
    cs.record_decision(case, qa, final_score=score, outcome=outcome, rationale="Agreed.")


def build_world() -> dict:
    """Create the department; return the people and the expected counts."""
    now, today = utcnow(), date.today()
    qa = make_user(["qa_manager"], full_name="Quinn Quality")
    subject = make_user(
        ["radiologist"], full_name="Olivia Oppenheimer", email="olivia@example.test",
        subspecialties=["neuro"],
        licenses=["CA", ("TX", today - timedelta(days=800), today - timedelta(days=10))])
    make_certification(subject, expires_on=date.today() + timedelta(days=20))
    make_privilege(subject, "Diagnostic CT interpretation", notes="Proctoring completed.")
    make_privilege(subject, "Neuroradiology MR interpretation", facility="Lakeside Clinic",
                   valid_to=date.today() + timedelta(days=15))
    make_privilege(subject, "Image-guided biopsy", valid_to=date.today() - timedelta(days=40))
    reviewers = [make_user(["reviewer"], full_name=n) for n in REVIEWER_NAMES]
    committee = [make_user(["reviewer"], full_name=n) for n in COMMITTEE_NAMES]
    others = [make_user(["radiologist"], full_name=n) for n in OTHER_READERS]
    when = now - timedelta(days=5)

    def read(reader, modality="CT"):
        return make_study(reader, modality=modality, finalized_at=when,
                          patient_name="SECRET^PATIENT").read

    # The subject: 24 CT + 10 MR reads; 30 reviewed.
    subject_reads = [read(subject, "CT") for _ in range(24)] + \
        [read(subject, "MR") for _ in range(10)]
    scores = ["1"] * 24 + ["2a", "2a", "unable", "3b", "2b", "3a"]
    reviews = [make_review(r, reviewers[i % 2], s) for i, (r, s) in
               enumerate(zip(subject_reads, scores, strict=False))]
    upheld = cs.open_case(reviews[27], by=reviewers[1])       # 3b → confirmed 3b upheld
    _decide(upheld, committee, qa, "3b", "upheld")
    downgraded = cs.open_case(reviews[28], by=reviewers[0])   # 2b → 2a: not significant
    _decide(downgraded, committee, qa, "2a", "downgraded")
    cs.open_case(reviews[29], by=reviewers[1])                # 3a pending
    # Other readers: 20 reviews each; the first has one confirmed 3a, the second none.
    for j, other in enumerate(others):
        for i in range(20):
            score = "3a" if (j == 0 and i == 0) else "1"
            rv = make_review(read(other, "CT" if i % 2 else "CR"), reviewers[i % 2], score)
            if score == "3a":
                _decide(cs.open_case(rv, by=reviewers[0]), committee, qa, "3a", "upheld")
    # Second opinions signed by the subject: 2 routine (1 h, 60 h: breached), 1 stat in 30 min.
    requester = others[0]
    study = make_study(requester, modality="CT")
    make_opinion_record(study, requester, subject, priority="routine", minutes=60)
    make_opinion_record(study, requester, subject, priority="routine", minutes=60 * 60)
    make_opinion_record(study, requester, subject, priority="stat", minutes=30)
    make_opinion_record(study, requester, None, priority="urgent", minutes=None,
                        requested_at=now - timedelta(days=1))  # open, overdue
    db.session.commit()
    return {"qa": qa, "subject": subject, "reviewers": reviewers, "committee": committee,
            "others": others, "upheld_case": upheld, "from": date.today() - timedelta(days=60),
            "to": date.today()}
