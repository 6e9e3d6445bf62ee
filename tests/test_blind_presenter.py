"""Blind and de-identified pages render through one presenter.

Each test is one of the reported leaks: typed identifiers on the de-identified review page
and its record.txt, the committee page showing the patient, and blind reviewers with a full
grant seeing the institution and the referring physician.
"""

from __future__ import annotations

from datetime import date

import pytest

from qaportal.qa import cases as case_service
from qaportal.reviews import service
from tests.factories import make_assignment, make_study, make_user

QUESTION = ("Jane Quillfeather (MRN 884-2291, DOB 07/11/1954, acc QACC-66120) from "
            "Brackenfold Infirmary, referred by Dr Osgood Wimbleton: nodule?")
TYPED = ("quillfeather", "jane", "884-2291", "07/11/1954", "qacc-66120", "brackenfold",
         "wimbleton", "osgood")


@pytest.fixture
def world(db):
    reader = make_user(["radiologist"], full_name="Aurora Radleigh")
    reviewer = make_user(["reviewer"], full_name="Rhoda Reviewson")
    full_reviewer = make_user(["reviewer"], full_name="Felix Fullview")
    member = make_user(["reviewer"], full_name="Magnus Memberly")
    qa = make_user(["qa_manager"])
    study = make_study(
        reader, patient_name="QUILLFEATHER^JANE", patient_birth_date=date(1954, 11, 7),
        institution="Brackenfold Infirmary", referring_physician="WIMBLETON^OSGOOD",
        clinical_question=QUESTION, clinical_history="Seen by Dr Radleigh's team (ARadleigh).",
        report="No acute findings. Signed aradleigh, for Jane Quillfeather.")
    study.patient_id, study.accession_number = "8842291", "QACC66120"
    deid = make_assignment(study.read, reviewer, deidentified=True)
    full = make_assignment(study.read, full_reviewer, deidentified=False)
    service.reveal(deid, "Nodule?", reviewer)
    review = service.submit(deid, reviewer, score="3b", category="perceptual",
                            comment="Quillfeather's nodule was missed")
    case_service.assign_committee(review.case, [member], qa)
    db.session.commit()
    return {"study": study, "deid": deid, "full": full, "reviewer": reviewer,
            "full_reviewer": full_reviewer, "member": member, "case": review.case}


def _get(client, auth, user, url) -> str:
    auth.logout()
    auth.login(user)
    resp = client.get(url)
    assert resp.status_code == 200, url
    return resp.get_data(as_text=True)


def _absent(body: str, terms) -> None:
    low = body.lower()
    for term in terms:
        assert term not in low, f"{term!r} shown"


def test_deidentified_review_page_and_record_hide_typed_identifiers(client, auth, world):
    w = world
    a = w["deid"]
    for url in (f"/reviews/{a.id}", f"/reviews/{a.id}/record.txt", f"/studies/{w['study'].id}"):
        body = _get(client, auth, w["reviewer"], url)
        _absent(body, TYPED + ("radleigh", "aurora"))
        assert "[removed]" in body, url  # the same rendering on every surface


def test_committee_page_never_shows_the_patient(client, auth, world):
    w = world
    body = _get(client, auth, w["member"], f"/reviews/committee/{w['case'].id}")
    _absent(body, TYPED + ("8842291", "qacc66120", "radleigh", "reviewson"))
    assert w["study"].pseudonym in body


def test_blind_reviewer_with_full_grant_sees_no_institution_or_referrer(client, auth, world):
    w = world
    for url in (f"/studies/{w['study'].id}", f"/reviews/{w['full'].id}",
                f"/reviews/{w['full'].id}/record.txt", "/reviews/assignments.json"):
        body = _get(client, auth, w["full_reviewer"], url)
        _absent(body, ("brackenfold", "wimbleton", "osgood", "radleigh", "aurora"))
    body = _get(client, auth, w["full_reviewer"], f"/studies/{w['study'].id}")
    assert "Institution" not in body and "Referring" not in body
    assert "Quillfeather" in body.title()  # a full grant still shows the patient
