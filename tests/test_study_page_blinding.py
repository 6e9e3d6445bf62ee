"""The study page keeps blind review blind: who reviews a study is shown only to QA managers
(each such view audited), and blind viewers never read the reader's name in free text."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from qaportal.extensions import db as _db
from qaportal.models import AuditEvent
from qaportal.qa import cases as case_service
from qaportal.reviews import service
from tests.factories import make_assignment, make_study, make_user

READER = "Zebulon Quirkfeather"
REVIEWER = "Ottoline Vantablack"
MEMBER = "Peregrine Snodgrass"


def _world(deidentified: bool = True):
    reader = make_user(["radiologist"], full_name=READER, email="zq@example.test")
    reviewer = make_user(["reviewer"], full_name=REVIEWER, email="ov@example.test")
    member = make_user(["reviewer"], full_name=MEMBER, email="ps@example.test")
    qa = make_user(["qa_manager"])
    admin = make_user(["admin"])
    study = make_study(
        reader, report=f"Dictated by {READER}.", description="CT CHEST Quirkfeather protocol",
        clinical_question="Nodule? Call zq@example.test",
        clinical_history=f"Seen by Dr. {READER.split()[1]} last week.")
    study.series[0].series_description = f"AXIAL {READER}"
    study.series[0].instance_count = 1
    a = make_assignment(study.read, reviewer, deidentified=deidentified)
    service.reveal(a, "Nodule", reviewer)
    review = service.submit(a, reviewer, score="3b", category="perceptual", comment="Missed")
    case_service.assign_committee(review.case, [member], qa)
    _db.session.commit()
    return {"reader": reader, "reviewer": reviewer, "member": member, "qa": qa,
            "admin": admin, "study": study, "case": review.case}


def _page(client, auth, user, url):
    auth.logout()
    auth.login(user)
    resp = client.get(url)
    assert resp.status_code == 200, url
    return resp.get_data(as_text=True)


def _identity_views():
    return _db.session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "qa.identities_viewed")).all()


def test_uploader_and_admin_see_a_count_not_the_reviewers(client, auth, db):
    w = _world()
    url = f"/studies/{w['study'].id}"
    for user in (w["reader"], w["admin"]):
        body = _page(client, auth, user, url)
        assert 'id="access"' in body
        assert REVIEWER not in body and MEMBER not in body
        assert "ov@example.test" not in body and "ps@example.test" not in body
        assert "review assignment" not in body and "committee review" not in body
        assert "2 blind peer-review grants" in body
    admin_body = _page(client, auth, w["admin"], url)
    assert f"Read by {READER}" in admin_body  # the admin sees the reader, not the reviewers
    assert _identity_views() == []


def test_qa_manager_sees_the_grants_and_the_view_is_audited(client, auth, db):
    w = _world()
    body = _page(client, auth, w["qa"], f"/studies/{w['study'].id}")
    assert REVIEWER in body and MEMBER in body and f"Read by {READER}" in body
    assert "review assignment" in body and "committee review" in body
    assert "blind peer-review grant" not in body
    events = _identity_views()
    assert len(events) == 1
    assert events[0].object_type == "studies" and events[0].object_id == str(w["study"].id)


def test_no_identity_view_without_blind_grants(client, auth, db):
    reader = make_user(["radiologist"])
    qa = make_user(["qa_manager"])
    study = make_study(reader)
    db.session.commit()
    _page(client, auth, qa, f"/studies/{study.id}")
    assert _identity_views() == []


def _assert_blind(body: str) -> None:
    low = body.lower()
    for part in ("zebulon", "quirkfeather", "zq@example.test"):
        assert part not in low, part
    assert "[name withheld]" in body


@pytest.mark.parametrize("deidentified", [False, True], ids=["full", "deidentified"])
def test_blind_viewers_never_read_the_reader_name_in_free_text(client, auth, db, deidentified):
    w = _world(deidentified)
    sid, series_id = w["study"].id, w["study"].series[0].id
    for user in (w["reviewer"], w["member"]):
        for url in (f"/studies/{sid}", f"/studies/{sid}/viewer", "/studies/"):
            _assert_blind(_page(client, auth, user, url))
        data = client.get(f"/studies/{sid}/series/{series_id}/frames.json").get_json()
        assert data["series"]["description"] == "AXIAL [name withheld]"
    body = _page(client, auth, w["reviewer"], f"/studies/{sid}")
    assert "Seen by Dr. [name withheld] last week." in body
    assert "Nodule? Call [name withheld]" in body


def test_unblind_viewers_see_the_notes_as_written(client, auth, db):
    w = _world(deidentified=False)
    for user in (w["reader"], w["qa"]):
        body = _page(client, auth, user, f"/studies/{w['study'].id}")
        assert f"Seen by Dr. {READER.split()[1]} last week." in body
        assert f"AXIAL {READER}" in body
