"""Small text defects a first day showed: 'Due in overdue 39 min', '1 instances'."""

from __future__ import annotations

from datetime import timedelta

from qaportal.extensions import db
from qaportal.models import utcnow
from qaportal.opinions.hooks import countdown_text
from tests.factories import make_opinion_request
from tests.opinion_world import planted_study
from tests.studyfiles import sample


def test_countdown_phrase_reads_as_a_sentence():
    now = utcnow()
    soon = now + timedelta(hours=3, minutes=5)
    assert countdown_text(soon, now, lead=True) == "Due in 3 h 05 min"
    assert countdown_text(now - timedelta(minutes=39), now, lead=True) == "Overdue by 39 min"
    assert countdown_text(now - timedelta(minutes=39), now) == "overdue 39 min"  # table cells


def test_overdue_request_page_says_overdue_by(client, auth, people):
    a = people["a"]
    req = make_opinion_request(planted_study(a), a, priority="stat")
    req.due_at = utcnow() - timedelta(minutes=39, seconds=20)
    db.session.commit()
    auth.login(a)
    page = client.get(f"/opinions/{req.id}").get_data(as_text=True)
    assert "Overdue by 39 min" in page
    assert "Due in overdue" not in page and 'data-lead="1"' in page


def test_one_image_is_not_one_instances(client, login_as):
    login_as("radiologist")
    with open(sample("CT_small.dcm"), "rb") as fh:
        client.post("/studies/upload", data={"files": [(fh, "ct.dcm")]},
                    content_type="multipart/form-data")
    from qaportal.models import Study

    study = db.session.scalars(db.select(Study)).one()
    page = client.get(f"/studies/{study.id}").get_data(as_text=True)
    assert "1 series, 1 image," in page and "1 instances" not in page
