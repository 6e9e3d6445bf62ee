"""QA manager actions on rules and reviews: save a rule, amend a review with a reason."""

from __future__ import annotations

from typing import Any

from qaportal import audit
from qaportal.extensions import db
from qaportal.models import Review, ReviewAmendment, SamplingRule, User, utcnow
from qaportal.models.review import DISCREPANCY_SCORES
from qaportal.reviews.service import ReviewError, case_scores, score_problems

RULE_FIELDS = ("name", "modality", "reader_id", "period_start", "period_end", "method",
               "percent", "every_n", "per_reader", "subspecialty", "deidentify", "due_days",
               "active")


def save_rule(rule: SamplingRule | None, data: dict[str, Any], by: User) -> SamplingRule:
    """Create or update a sampling rule from validated data."""
    created = rule is None
    if rule is None:
        rule = SamplingRule(created_by_id=by.id)
        db.session.add(rule)
    for name in RULE_FIELDS:
        if name in data:
            setattr(rule, name, data[name])
    rule.modality = (rule.modality or "").strip().upper() or None
    # Keep only the parameter the method uses, so the rule reads unambiguously.
    if rule.method != "percent":
        rule.percent = None
    if rule.method != "every_nth":
        rule.every_n = None
    if rule.method != "per_reader_month":
        rule.per_reader = None
    db.session.flush()
    audit.record("qa.rule_created" if created else "qa.rule_updated", rule, actor=by,
                 params=rule.params())
    return rule


def amend_review(review: Review, by: User, *, reason: str, score: str, category: str | None,
                 comment: str, learning_case: bool) -> ReviewAmendment:
    """Amend a submitted review; the original and every amendment are kept."""
    if not (reason or "").strip():
        raise ReviewError("An amendment needs a reason.")
    problems = score_problems(score, category, comment, "amended" if score == "unable" else "")
    if problems:
        raise ReviewError(" ".join(problems.values()))
    before = review.effective
    amendment = ReviewAmendment(
        review_id=review.id, amended_by_id=by.id, amended_at=utcnow(), reason=reason.strip(),
        score=score, category=category if score in DISCREPANCY_SCORES else None,
        comment=(comment or "").strip(), learning_case=bool(learning_case),
    )
    db.session.add(amendment)
    review.amendments.append(amendment)
    db.session.flush()
    audit.record("review.amended", review, actor=by, amendment_id=amendment.id,
                 score_before=before.score, score_after=score)
    if score in case_scores() and review.case is None:
        from qaportal.qa.cases import open_case

        open_case(review, by=by)
    return amendment
