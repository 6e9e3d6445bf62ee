"""Peer learning: anonymous teaching cases and conferences (attendance, points, actions)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from qaportal import audit
from qaportal.extensions import db
from qaportal.models import (
    Conference,
    ConferenceAttendee,
    ConferenceCase,
    DiscrepancyCase,
    Review,
    ReviewAmendment,
    Study,
    TeachingCase,
    User,
    loading,
)
from qaportal.notify import notify
from qaportal.reviews.blinding import WITHHELD, scrub
from qaportal.studies.access import grant_access


class LearningError(ValueError):
    """A peer-learning action that is not allowed; the message says why."""


def _eligible(review: Review) -> bool:
    return review.effective.learning_case or (review.case is not None
                                              and review.case.status == "closed")


def candidates_stmt() -> sa.Select:
    """Reviews flagged as learning cases (as last amended) or with a closed case, not yet
    taught, newest first: the same rule as `_eligible`, decided by the database."""
    taught = sa.select(TeachingCase.review_id).where(TeachingCase.review_id.is_not(None))
    last_flag = (sa.select(ReviewAmendment.learning_case)
                 .where(ReviewAmendment.review_id == Review.id)
                 .order_by(ReviewAmendment.id.desc()).limit(1).scalar_subquery())
    closed = sa.exists().where(DiscrepancyCase.review_id == Review.id,
                               DiscrepancyCase.status == "closed")
    return (sa.select(Review)
            .where(Review.id.not_in(taught),
                   sa.or_(sa.func.coalesce(last_flag, Review.learning_case).is_(True), closed))
            .order_by(Review.id.desc()))


def learning_candidates(limit: int | None = None) -> list[Review]:
    """Return the newest `limit` learning candidates (all when None), with what the
    teaching page shows of each loaded."""
    return list(db.session.scalars(candidates_stmt().limit(limit).options(
        *loading.review_rows(), selectinload(Review.case))))


def teaching_refusal(review: Review) -> str | None:
    """Return why a review cannot become a teaching case (None: it is a learning candidate)."""
    if db.session.scalar(sa.select(TeachingCase.id).where(TeachingCase.review_id == review.id)):
        return "This review is already a teaching case."
    if not _eligible(review):
        return ("Only reviews flagged as good learning cases, or reviews whose discrepancy "
                "case is closed, can become teaching cases.")
    return None


def create_teaching_case(study: Study, by: User, *, title: str, teaching_point: str,
                         category: str | None, review: Review | None = None) -> TeachingCase:
    """Create an anonymous teaching case; names of the people involved are refused."""
    people: list[User | None] = [study.owner]
    if review is not None:
        people += [review.assignment.read.reader, review.assignment.reviewer]
        if review.case is not None:
            people += [m.user for m in review.case.members]
    for text in (title, teaching_point):
        if WITHHELD in scrub(text, people):
            raise LearningError("Teaching cases are anonymous: remove the names of the "
                                "people involved from the title and the teaching point.")
    if review is not None and db.session.scalar(
            sa.select(TeachingCase.id).where(TeachingCase.review_id == review.id)):
        raise LearningError("This review is already a teaching case.")
    case = TeachingCase(study_id=study.id, review_id=review.id if review else None,
                        title=title.strip(), teaching_point=teaching_point.strip(),
                        category=category or None, created_by_id=by.id)
    db.session.add(case)
    db.session.flush()
    audit.record("learning.teaching_case_created", case, actor=by, study_id=study.id,
                 review_id=review.id if review else None)
    if review is not None and review.case is not None:
        from qaportal.qa.cases import _event

        _event(review.case, "teaching", by)
    return case


def create_conference(by: User, *, title: str, held_on: date) -> Conference:
    """Schedule a conference."""
    conf = Conference(title=title.strip(), held_on=held_on, created_by_id=by.id)
    db.session.add(conf)
    db.session.flush()
    audit.record("learning.conference_created", conf, actor=by, held_on=held_on.isoformat())
    return conf


def _grant(conf: Conference, users: Iterable[User], cases: Iterable[TeachingCase],
           by: User) -> None:
    for user in users:
        for tc in cases:
            grant_access(tc.study, user, mode="deidentified", source=("teaching_case", tc.id),
                         by=by)


def add_case(conf: Conference, teaching_case: TeachingCase, by: User) -> None:
    """Put a teaching case on the agenda; attendees get de-identified access to it."""
    if any(c.teaching_case_id == teaching_case.id for c in conf.cases):
        raise LearningError("The case is already on this conference's agenda.")
    conf.cases.append(ConferenceCase(teaching_case=teaching_case, position=len(conf.cases)))
    db.session.flush()
    _grant(conf, [a.user for a in conf.attendees], [teaching_case], by)
    audit.record("learning.case_added", conf, actor=by, teaching_case_id=teaching_case.id)


def invite(conf: Conference, users: Iterable[User], by: User) -> None:
    """Invite people; they get de-identified access to the agenda's studies."""
    present = {a.user_id for a in conf.attendees}
    new = [u for u in users if u.id not in present]
    for user in new:
        conf.attendees.append(ConferenceAttendee(user_id=user.id, user=user))
        notify(user, "learning.invited", f"You are invited to a peer-learning conference on "
               f"{conf.held_on.isoformat()}.", f"/reviews/conferences/{conf.id}")
    db.session.flush()
    _grant(conf, new, [c.teaching_case for c in conf.cases], by)
    audit.record("learning.invited", conf, actor=by, user_ids=sorted(u.id for u in new))


def record_minutes(conf: Conference, by: User, *, attended_ids: Iterable[int],
                   learning_points: str, improvement_actions: str) -> None:
    """Record attendance, the learning points and the improvement actions."""
    attended = set(attended_ids)
    for a in conf.attendees:
        a.attended = a.user_id in attended
    conf.learning_points = (learning_points or "").strip()
    conf.improvement_actions = (improvement_actions or "").strip()
    db.session.flush()
    audit.record("learning.minutes_recorded", conf, actor=by, attended=sorted(attended))
