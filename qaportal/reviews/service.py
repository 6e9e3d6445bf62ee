"""The blind review: record an impression, reveal the report, score, submit; ad-hoc reviews."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from qaportal import audit
from qaportal.blind_roles import adhoc_refusal
from qaportal.extensions import db
from qaportal.models import OriginalRead, Review, ReviewAssignment, User, utcnow
from qaportal.models.review import CATEGORIES, DISCREPANCY_SCORES, REVIEW_SCORES
from qaportal.permissions import study_access_mode
from qaportal.studies.access import grant_access


class ReviewError(ValueError):
    """A review action that is not allowed now; the message says why."""


def score_problems(score: str | None, category: str | None, comment: str | None,
                   unable_reason: str | None) -> dict[str, str]:
    """Return field -> problem for a score that cannot be submitted (empty when valid)."""
    problems = {}
    if score not in REVIEW_SCORES:
        problems["score"] = "Choose a RADPEER score (1, 2a, 2b, 3a, 3b) or 'unable to assess'."
    elif score in DISCREPANCY_SCORES:
        if category not in CATEGORIES:
            problems["category"] = "A discrepancy needs a category."
        if not (comment or "").strip():
            problems["comment"] = "A discrepancy needs a comment explaining it."
    elif score == "unable" and not (unable_reason or "").strip():
        problems["unable_reason"] = "Say why the case cannot be assessed."
    return problems


def case_scores() -> tuple[str, ...]:
    """Return the scores that open a discrepancy case (config REVIEW_CASE_SCORES)."""
    return tuple(current_app.config["REVIEW_CASE_SCORES"])


def reveal(assignment: ReviewAssignment, impression: str, by: User) -> None:
    """Keep the reviewer's own impression and reveal the original report (step 1 -> 2)."""
    if assignment.status != "assigned":
        raise ReviewError("This review is already closed.")
    if assignment.revealed_at is not None:
        raise ReviewError("The original report is already revealed; the impression is kept.")
    now = utcnow()
    assignment.impression = (impression or "").strip()
    assignment.impression_at = now if assignment.impression else None
    assignment.revealed_at = now
    db.session.flush()
    audit.record("review.revealed", assignment, actor=by,
                 with_impression=bool(assignment.impression))


def submit(assignment: ReviewAssignment, by: User, *, score: str, category: str | None,
           comment: str, unable_reason: str = "", learning_case: bool = False) -> Review:
    """Submit the score; the review becomes immutable; significant scores open a case."""
    if assignment.status != "assigned":
        raise ReviewError("This review was already submitted.")
    if assignment.revealed_at is None:
        raise ReviewError("Record your impression and reveal the original report first.")
    problems = score_problems(score, category, comment, unable_reason)
    if problems:
        raise ReviewError(" ".join(problems.values()))
    now = utcnow()
    review = Review(
        assignment=assignment, score=score,
        category=category if score in DISCREPANCY_SCORES else None,
        comment=(comment or "").strip(),
        unable_reason=(unable_reason or "").strip() if score == "unable" else "",
        learning_case=bool(learning_case), submitted_at=now,
    )
    db.session.add(review)
    assignment.status = "submitted"
    assignment.submitted_at = now
    db.session.flush()
    audit.record("review.submitted", review, actor=by, assignment_id=assignment.id,
                 score=score, category=review.category, learning_case=review.learning_case)
    if score in case_scores():
        from qaportal.qa.cases import open_case

        open_case(review, by=by)
    return review


def adhoc_problem(read: OriginalRead | None, reviewer: User) -> str | None:
    """Return why the reviewer cannot open an ad-hoc review of the read, or None."""
    if read is None or read.finalized_at is None:
        return "Only finalized reads can be peer reviewed."
    if read.reader_id == reviewer.id:
        return "You cannot review your own read."
    # Whoever asked for or gave an opinion on the study, or was shared it, knows its
    # reader: not a blind review (qaportal/blind_roles.py; the uploader's own look is kept).
    if adhoc_refusal(reviewer.id, read.study):
        return ("You requested, read or gave an opinion on this study, or it was shared "
                "with you: your review of it would not be blind.")
    exists = db.session.scalar(sa.select(ReviewAssignment.id).where(
        ReviewAssignment.read_id == read.id, ReviewAssignment.reviewer_id == reviewer.id))
    if exists is not None:
        return "You already have a review of this read."
    return None


def open_adhoc(read: OriginalRead, reviewer: User) -> ReviewAssignment:
    """Open an ad-hoc review of a read the reviewer came across (counted apart from samples)."""
    problem = adhoc_problem(read, reviewer)
    if problem:
        raise ReviewError(problem)
    mode = study_access_mode(reviewer, read.study)
    if mode is None:
        raise ReviewError("You do not have access to this study.")
    now = utcnow()
    assignment = ReviewAssignment(
        read_id=read.id, reviewer_id=reviewer.id, source="adhoc", deidentified=mode != "full",
        assigned_by_id=reviewer.id, assigned_at=now,
        due_at=now + timedelta(days=current_app.config["REVIEW_DUE_DAYS"]),
    )
    db.session.add(assignment)
    db.session.flush()
    grant_access(read.study, reviewer, mode=mode, source=("review_assignment", assignment.id),
                 by=reviewer)
    audit.record("review.adhoc_opened", assignment, actor=reviewer, read_id=read.id)
    return assignment
