"""QA pages: access by role, rendering with a realistic demo history, audit of identity views."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from qaportal.models import AuditEvent, DiscrepancyCase, Review, SamplingRule, TeachingCase

QA_PAGES = ["/qa/", "/qa/stats", "/qa/stats?start=2020-01-01&end=2030-01-01&modality=ct",
            "/qa/rules", "/qa/rules/new", "/qa/reviews", "/qa/reviews?score=3b&source=sample",
            "/qa/cases", "/qa/cases?status=open", "/qa/teaching", "/qa/conferences"]


@pytest.mark.parametrize("role", ["radiologist", "reviewer", "admin"])
def test_qa_pages_are_for_qa_managers_only(client, login_as, role):
    login_as(role)
    for url in QA_PAGES:
        assert client.get(url).status_code == 403, url


def test_reviewer_pages_refuse_other_roles(client, login_as):
    login_as("qa_manager")
    for url in ("/reviews/", "/reviews/assignments.json", "/reviews/feedback"):
        assert client.get(url).status_code == 403, url


def test_anonymous_is_sent_to_login(client):
    for url in [*QA_PAGES[:2], "/reviews/", "/reviews/conferences/1"]:
        assert client.get(url).status_code == 302


@pytest.fixture
def demo(app, db):
    from qaportal.demo import seed

    accounts, _, summaries = seed()
    return {"accounts": accounts, "summaries": summaries}


def test_demo_history_is_realistic_and_idempotent(db, demo):
    # Its speed is measured by benchmarks/demo_seed.py, not asserted here (a loaded test
    # machine would make a time bound flaky).
    reviews = db.session.scalar(sa.select(sa.func.count()).select_from(Review))
    assert reviews >= 300
    states = set(db.session.scalars(sa.select(DiscrepancyCase.status)))
    assert states == {"open", "committee", "decided", "closed"}
    assert db.session.scalar(sa.select(sa.func.count()).where(DiscrepancyCase.round > 1)) >= 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(TeachingCase)) >= 1
    from qaportal.demo import seed

    _, _, summaries = seed()
    assert any("already present" in s for s in summaries)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Review)) == reviews
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SamplingRule)) == 1


def test_every_qa_page_renders_with_demo_data(client, auth, db, demo):
    from qaportal.demo.accounts import demo_password

    auth.login(demo["accounts"]["qa_manager"], demo_password())
    for url in QA_PAGES:
        resp = client.get(url)
        assert resp.status_code == 200, url
    stats = client.get("/qa/stats").get_data(as_text=True)
    assert "<svg" in stats and "Dr. Dmitri Volkov" in stats and "Wilson" in stats
    for model, prefix in ((DiscrepancyCase, "/qa/cases/"), (Review, "/qa/reviews/")):
        some = db.session.scalars(sa.select(model.id).limit(3)).all()
        for oid in some:
            assert client.get(f"{prefix}{oid}").status_code == 200
    conf_id = db.session.scalar(sa.text("SELECT id FROM conferences"))
    assert client.get(f"/qa/conferences/{conf_id}").status_code == 200
    rule_id = db.session.scalar(sa.select(SamplingRule.id))
    assert client.get(f"/qa/rules/{rule_id}/run?seed=5").status_code == 200
    assert client.get(f"/qa/rules/{rule_id}/edit").status_code == 200
    audited = db.session.scalars(sa.select(AuditEvent.action).where(
        AuditEvent.action == "qa.identities_viewed")).all()
    assert len(audited) >= 3


def test_demo_users_see_their_pages(client, auth, db, demo):
    from qaportal.demo.accounts import demo_password

    acc = demo["accounts"]
    auth.login(acc["reviewer"], demo_password())
    assert client.get("/reviews/").status_code == 200
    assert "Peer reviews" in client.get("/").get_data(as_text=True)
    auth.logout()
    auth.login(acc["radiologist"], demo_password())
    body = client.get("/reviews/feedback").get_data(as_text=True)
    assert "Feedback with reader" in body


def test_amend_page_keeps_input_on_error(client, auth, db, demo):
    from qaportal.demo.accounts import demo_password

    auth.login(demo["accounts"]["qa_manager"], demo_password())
    rid = db.session.scalar(sa.select(Review.id).where(Review.score == "1").limit(1))
    resp = client.post(f"/qa/reviews/{rid}/amend", data={"score": "3a", "comment": "typed",
                                                          "reason": "because"})
    assert resp.status_code == 400 and "typed" in resp.get_data(as_text=True)
    resp = client.post(f"/qa/reviews/{rid}/amend", data={
        "score": "3a", "comment": "typed", "category": "perceptual", "reason": "because"})
    assert resp.status_code == 302
