"""The blind review workflow: impression, reveal, score validation, immutability, ad hoc."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from qaportal.models import (
    DiscrepancyCase,
    Review,
    ReviewAmendment,
    ReviewAssignment,
    utcnow,
)
from qaportal.models.review import ImmutableReviewError
from qaportal.qa.legacy import import_legacy_reviews, map_legacy_score
from qaportal.qa.service import amend_review
from qaportal.reviews import service
from tests.factories import make_assignment, make_review, make_study, make_user


@pytest.fixture
def case(db):
    reader = make_user(["radiologist"])
    reviewer = make_user(["reviewer"])
    study = make_study(reader, report="Lungs clear.")
    assignment = make_assignment(study.read, reviewer)
    db.session.commit()
    return {"reader": reader, "reviewer": reviewer, "study": study, "a": assignment}


@pytest.mark.parametrize("score,category,comment,reason,field", [
    ("4", None, "", "", "score"),
    (None, None, "", "", "score"),
    ("2a", None, "why", "", "category"),
    ("3b", "perceptual", "  ", "", "comment"),
    ("2b", "bogus", "why", "", "category"),
    ("unable", None, "", "", "unable_reason"),
])
def test_score_problems(score, category, comment, reason, field):
    assert field in service.score_problems(score, category, comment, reason)


@pytest.mark.parametrize("score,category,comment,reason", [
    ("1", None, "", ""), ("2a", "interpretive", "x", ""), ("3b", "technical", "x", ""),
    ("unable", None, "", "Series missing"),
])
def test_valid_scores(score, category, comment, reason):
    assert service.score_problems(score, category, comment, reason) == {}


def test_database_refuses_scores_outside_the_closed_set(db, case):
    a = case["a"]
    db.session.add(Review(assignment_id=a.id, score="4", comment=""))
    with pytest.raises(sa.exc.IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_database_requires_category_and_comment_for_discrepancies(db, case):
    db.session.add(Review(assignment_id=case["a"].id, score="3b", comment=""))
    with pytest.raises(sa.exc.IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_submit_needs_reveal_first(db, case):
    with pytest.raises(service.ReviewError):
        service.submit(case["a"], case["reviewer"], score="1", category=None, comment="")


def test_flow_reveal_then_submit_then_immutable(db, case):
    a, reviewer = case["a"], case["reviewer"]
    service.reveal(a, "Small nodule right upper lobe.", reviewer)
    assert a.impression_at is not None and a.revealed_at is not None
    with pytest.raises(service.ReviewError):
        service.reveal(a, "changed my mind", reviewer)
    review = service.submit(a, reviewer, score="1", category=None, comment="",
                            learning_case=True)
    db.session.commit()
    assert a.status == "submitted" and review.case is None
    with pytest.raises(service.ReviewError):
        service.submit(a, reviewer, score="2a", category="perceptual", comment="x")
    review.score = "3b"
    with pytest.raises(ImmutableReviewError):
        db.session.flush()
    db.session.rollback()
    db.session.delete(db.session.get(Review, review.id))
    with pytest.raises(ImmutableReviewError):
        db.session.flush()
    db.session.rollback()


@pytest.mark.parametrize("score,opens", [("1", False), ("2a", False), ("2b", True),
                                         ("3a", True), ("3b", True)])
def test_significant_scores_open_a_case(db, case, score, opens):
    service.reveal(case["a"], "", case["reviewer"])
    review = service.submit(case["a"], case["reviewer"], score=score, category="perceptual",
                            comment="Missed nodule.")
    assert (review.case is not None) is opens


def test_2a_opens_a_case_when_configured(app, db, case):
    app.config["REVIEW_CASE_SCORES"] = ("2a", "2b", "3a", "3b")
    service.reveal(case["a"], "", case["reviewer"])
    review = service.submit(case["a"], case["reviewer"], score="2a", category="interpretive",
                            comment="Could be called.")
    assert review.case is not None and review.case.status == "open"


def test_config_refuses_unknown_case_scores(tmp_path):
    from qaportal import create_app
    from qaportal.config import ConfigError

    with pytest.raises(ConfigError):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "x",
                    "INSTANCE_PATH": str(tmp_path), "REVIEW_CASE_SCORES": ("4",)})


def test_amendment_keeps_the_original(db, case):
    qa = make_user(["qa_manager"])
    review = make_review(make_study(case["reader"]).read, case["reviewer"], "3b")
    with pytest.raises(service.ReviewError):
        amend_review(review, qa, reason="", score="1", category=None, comment="",
                     learning_case=False)
    amend_review(review, qa, reason="Reviewer misread the series.", score="2a",
                 category="interpretive", comment="Subtle.", learning_case=False)
    db.session.commit()
    db.session.expire_all()
    review = db.session.get(Review, review.id)
    assert review.score == "3b" and review.effective.score == "2a" and review.effective.amended
    assert len(review.amendments) == 1
    amend_review(review, qa, reason="Committee view", score="1", category=None, comment="",
                 learning_case=True)
    db.session.commit()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ReviewAmendment)) == 2
    assert review.effective.score == "1" and review.effective.learning_case


def test_amending_up_to_significant_opens_a_case(db, case):
    qa = make_user(["qa_manager"])
    review = make_review(make_study(case["reader"]).read, case["reviewer"], "1")
    amend_review(review, qa, reason="Recheck", score="3a", category="perceptual",
                 comment="Missed.", learning_case=False)
    assert review.case is not None


def test_adhoc_review_rules(db):
    reader = make_user(["radiologist", "reviewer"])
    reviewer = make_user(["reviewer", "radiologist"])
    own = make_study(reader)
    with pytest.raises(service.ReviewError, match="own read"):
        service.open_adhoc(own.read, reader)
    other = make_study(reader)
    with pytest.raises(service.ReviewError, match="access"):
        service.open_adhoc(other.read, reviewer)
    mine = make_study(reviewer, reader=reader)  # the reviewer uploaded it: full access
    a = service.open_adhoc(mine.read, reviewer)
    assert a.source == "adhoc" and a.run_id is None and not a.deidentified
    with pytest.raises(service.ReviewError, match="already"):
        service.open_adhoc(mine.read, reviewer)
    draft = make_study(reviewer, reader=reader)
    draft.read.finalized_at = None
    with pytest.raises(service.ReviewError, match="finalized"):
        service.open_adhoc(draft.read, reviewer)


def test_adhoc_review_from_the_study_page(client, auth, db):
    reader = make_user(["radiologist"])
    reviewer = make_user(["reviewer", "radiologist"])
    study = make_study(reviewer, reader=reader)
    db.session.commit()
    auth.login(reviewer)
    page = client.get(f"/studies/{study.id}").get_data(as_text=True)
    assert f"/reviews/adhoc/{study.id}" in page
    resp = client.post(f"/reviews/adhoc/{study.id}")
    assert resp.status_code == 302
    a = db.session.scalar(sa.select(ReviewAssignment))
    assert a.source == "adhoc" and resp.headers["Location"].endswith(f"/reviews/{a.id}")


def test_http_review_flow_keeps_typed_input_on_error(client, auth, db, case):
    a = case["a"]
    auth.login(case["reviewer"])
    page = client.get(f"/reviews/{a.id}").get_data(as_text=True)
    assert "Lungs clear." not in page  # the report stays hidden in step 1
    assert 'id="step-impression"' in page
    resp = client.post(f"/reviews/{a.id}/reveal", data={"impression": "Nodule RUL"})
    assert resp.status_code == 302
    page = client.get(f"/reviews/{a.id}").get_data(as_text=True)
    assert "Lungs clear." in page and "Nodule RUL" in page
    resp = client.post(f"/reviews/{a.id}/submit", data={"score": "3b", "comment": "Missed RUL"})
    assert resp.status_code == 400
    body = resp.get_data(as_text=True)
    assert "A discrepancy needs a category." in body and "Missed RUL" in body
    resp = client.post(f"/reviews/{a.id}/submit", data={
        "score": "3b", "comment": "Missed RUL nodule", "category": "perceptual"})
    assert resp.status_code == 302
    db.session.expire_all()
    review = db.session.scalar(sa.select(Review))
    assert review.score == "3b"
    assert db.session.scalar(sa.select(DiscrepancyCase)).review_id == review.id
    resp = client.post(f"/reviews/{a.id}/submit", data={"score": "1"})
    assert resp.status_code == 302 and db.session.get(Review, review.id).score == "3b"


def test_other_reviewers_get_404(client, auth, db, case):
    other = make_user(["reviewer"])
    db.session.commit()
    auth.login(other)
    a = case["a"]
    for url in (f"/reviews/{a.id}", f"/reviews/{a.id}/record.txt"):
        assert client.get(url).status_code == 404
    assert client.post(f"/reviews/{a.id}/reveal", data={}).status_code == 404
    assert client.post(f"/reviews/{a.id}/submit", data={"score": "1"}).status_code == 404
    assert client.get("/reviews/assignments.json").get_json() == {
        "assignments": [], "next": None, "next_done": None, "page_size": 50}
    # another reviewer's assignment named as a cursor starts this reviewer's list over
    for cursor in (f"n{a.id}", f"p{a.id}"):
        body = client.get(f"/reviews/assignments.json?cursor={cursor}&done={cursor}").get_json()
        assert body["assignments"] == [] and body["next"] is None


def test_radiologist_without_reviewer_role_is_refused(client, login_as):
    login_as("radiologist")
    assert client.get("/reviews/").status_code == 403
    assert client.get("/qa/").status_code == 403


def test_legacy_import_maps_and_labels(db):
    reader = make_user(["radiologist"])
    reviewer = make_user(["reviewer"], email="old@example.test")
    s1, s2, s3 = (make_study(reader) for _ in range(3))
    csv_text = (
        "study_uid,reviewer_email,score,comment,category,reviewed_on\n"
        f"{s1.study_uid},old@example.test,4,Missed fracture,perceptual,2015-03-02\n"
        f"{s2.study_uid},old@example.test,2,,,2015-03-03\n"
        f"{s3.study_uid},old@example.test,5,,,\n"
        f"{s1.study_uid},old@example.test,4,dup,,\n"
        f"9.9.9,old@example.test,1,,,\n"
    )
    result = import_legacy_reviews(csv_text)
    db.session.commit()
    assert (result.imported, result.duplicates) == (2, 1)
    assert [line for line, _ in result.errors] == [4, 6]
    reviews = {r.assignment.read.study_id: r for r in db.session.scalars(sa.select(Review))}
    assert (reviews[s1.id].legacy_score, reviews[s1.id].score) == ("4", "3b")
    assert (reviews[s2.id].legacy_score, reviews[s2.id].score) == ("2", "2a")
    assert reviews[s1.id].assignment.source == "legacy"
    assert reviews[s1.id].submitted_at.year == 2015
    assert [map_legacy_score(x) for x in ("1", "3", "4a", "4B")] == ["1", "3a", "3a", "3b"]
    assert reviewer.id != reader.id


def test_legacy_import_cli(app, db, tmp_path):
    reader = make_user(["radiologist"])
    make_user(["reviewer"], email="cli@example.test")
    study = make_study(reader)
    db.session.commit()
    path = tmp_path / "legacy.csv"
    path.write_text(f"study_uid,reviewer_email,score\n{study.study_uid},cli@example.test,4\n")
    result = app.test_cli_runner().invoke(args=["qa", "import-legacy", str(path)])
    assert "imported 1" in result.output, result.output
    assert db.session.scalar(sa.select(Review.legacy_score)) == "4"


def test_overdue_flag(db, case):
    a = case["a"]
    assert not a.is_overdue(utcnow())
    from datetime import timedelta

    assert a.is_overdue(utcnow() + timedelta(days=30))


def test_database_refuses_raw_changes_to_a_submitted_review(app):
    """Even SQL that bypasses the ORM cannot edit or delete a submitted review."""
    from qaportal.extensions import db

    reader = make_user(roles=("radiologist",))
    reviewer = make_user(roles=("reviewer",))
    review = make_review(make_study(reader).read, reviewer, "3b")
    db.session.commit()
    for statement in ("UPDATE reviews SET score = '1' WHERE id = :id",
                      "DELETE FROM reviews WHERE id = :id"):
        with pytest.raises(sa.exc.DatabaseError, match="immutable"):
            db.session.execute(sa.text(statement), {"id": review.id})
        db.session.rollback()
    assert db.session.get(type(review), review.id).score == "3b"


def test_legacy_score_label_is_shown_on_the_qa_pages(client, auth, db):
    reader = make_user(["radiologist"])
    make_user(["reviewer"], email="legacy-label@example.test")
    qa = make_user(["qa_manager"])
    study = make_study(reader)
    result = import_legacy_reviews(
        "study_uid,reviewer_email,score,comment\n"
        f"{study.study_uid},legacy-label@example.test,4,Missed fracture\n")
    plain = make_user(["reviewer"])
    make_review(make_study(reader).read, plain, "2a")  # not imported: no label
    db.session.commit()
    assert result.imported == 1
    review = db.session.scalars(sa.select(Review).where(Review.legacy_score.is_not(None))).one()
    auth.login(qa)
    body = client.get(f"/qa/reviews/{review.id}").get_data(as_text=True)
    assert "mapped from legacy 2009 score 4" in body
    listing = client.get("/qa/reviews").get_data(as_text=True)
    assert listing.count("legacy 4 (2009)") == 1
    filtered = client.get("/qa/reviews?source=legacy").get_data(as_text=True)
    assert "legacy 4 (2009)" in filtered and f"#{review.id}" in filtered
