"""The people and the planted-identifier study shared by the second-opinion tests."""

from __future__ import annotations

from datetime import date

import pytest

from qaportal.extensions import db
from tests.factories import make_study, make_user

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


def planted_study(owner, **kw):
    study = make_study(owner, patient_name=PLANTED["patient_name"], **kw)
    study.patient_id = PLANTED["patient_id"]
    study.accession_number = PLANTED["accession_number"]
    study.patient_birth_date = PLANTED["patient_birth_date"]
    db.session.flush()
    return study



def assert_no_identifiers(text: str) -> None:
    for value in ("ZZPLANTED", "NAMEXQ", "PIDPLANT987", "ACCPLANT654", "1961-07-23"):
        assert value not in text
