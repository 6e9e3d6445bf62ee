"""Discrepancy cases: committee, independent blinded scoring, decision, reader feedback."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from qaportal import audit
from qaportal.blind_roles import RoleConflict, knows_reader_ids
from qaportal.extensions import db
from qaportal.models import (
    CaseEvent,
    CommitteeMember,
    CommitteeVote,
    DiscrepancyCase,
    Review,
    User,
    UserRole,
    utcnow,
)
from qaportal.models.discrepancy import OUTCOMES
from qaportal.models.review import RADPEER_SCORES
from qaportal.notify import notify
from qaportal.studies.access import grant_access


class CaseError(ValueError):
    """A case action that is not allowed now; the message says why."""


def _event(case: DiscrepancyCase, event: str, by: User | None, note: str = "") -> None:
    case.events.append(CaseEvent(event=event, at=utcnow(), by_id=by.id if by else None,
                                 note=note))


def _set_status(case: DiscrepancyCase, status: str) -> None:
    case.status = status
    case.status_at = utcnow()


def qa_managers() -> list[User]:
    """Return the active QA managers."""
    return list(db.session.scalars(
        sa.select(User).join(UserRole).where(UserRole.role == "qa_manager",
                                             User.active.is_(True)).order_by(User.id)))


def parties(case: DiscrepancyCase) -> tuple[User, User]:
    """Return (reader, reviewer) of the case."""
    assignment = case.review.assignment
    return assignment.read.reader, assignment.reviewer


def open_case(review: Review, by: User | None) -> DiscrepancyCase:
    """Open a discrepancy case for a review and tell the QA managers."""
    if review.case is not None:
        return review.case
    now = utcnow()
    case = DiscrepancyCase(review=review, status="open", opened_at=now, status_at=now)
    db.session.add(case)
    _event(case, "opened", by)
    db.session.flush()
    audit.record("discrepancy.opened", case, actor=by, review_id=review.id)
    for manager in qa_managers():
        notify(manager, "discrepancy.opened", "A peer review opened a discrepancy case.",
               f"/qa/cases/{case.id}")
    return case


def committee_candidates(case: DiscrepancyCase) -> list[User]:
    """Return who may be added to the committee: active reviewers/radiologists, not yet on
    it, not the parties, nobody who knows the reader (qaportal/blind_roles.py)."""
    reader, reviewer = parties(case)
    study_id = case.review.assignment.read.study_id
    excluded = {reader.id, reviewer.id, *knows_reader_ids(study_id),
                *(m.user_id for m in case.members)}
    users = db.session.scalars(
        sa.select(User).join(UserRole)
        .where(UserRole.role.in_(("reviewer", "radiologist")), User.active.is_(True))
        .order_by(User.full_name).distinct()
    ).all()
    return [u for u in users if u.id not in excluded]


def assign_committee(case: DiscrepancyCase, members: Iterable[User], by: User) -> None:
    """Add committee members (never the reader or the reviewer) and start their scoring."""
    if case.status not in ("open", "committee"):
        raise CaseError("The committee can be changed only before the decision.")
    present = {m.user_id for m in case.members}
    members = [u for u in members if u.id not in present]
    if not members and not case.members:
        raise CaseError("Choose at least one committee member.")
    allowed = {u.id for u in committee_candidates(case)}
    reader, reviewer = parties(case)
    for user in members:
        if user.id in (reader.id, reviewer.id):
            raise CaseError("The reader and the reviewer cannot sit on the committee.")
        if user.id not in allowed:
            raise CaseError(f"{user.full_name} cannot sit on this committee.")
    study = case.review.assignment.read.study
    for user in members:
        case.members.append(CommitteeMember(user_id=user.id, added_by_id=by.id))
        try:
            grant_access(study, user, mode="deidentified",
                         source=("committee_review", case.id), by=by)
        except RoleConflict as exc:  # re-checked at the grant; the view rolls back
            raise CaseError(str(exc)) from exc
        notify(user, "discrepancy.committee",
               "You were asked to score a peer-review discrepancy case.",
               f"/reviews/committee/{case.id}")
    if case.status == "open":
        _set_status(case, "committee")
    _event(case, "committee_assigned", by, note=f"{len(case.members)} member(s)")
    db.session.flush()
    audit.record("discrepancy.committee_assigned", case, actor=by,
                 member_ids=sorted(m.user_id for m in case.members))


def is_member(case: DiscrepancyCase, user: User) -> bool:
    """Return True when the user sits on the case's committee."""
    return any(m.user_id == user.id for m in case.members)


def own_vote(case: DiscrepancyCase, user: User) -> CommitteeVote | None:
    """Return the user's vote in the current round, if any."""
    return next((v for v in case.round_votes() if v.user_id == user.id), None)


def cast_vote(case: DiscrepancyCase, user: User, score: str, comment: str) -> CommitteeVote:
    """Record a member's independent score for the current round (once)."""
    if not is_member(case, user):
        raise CaseError("Only committee members score a case.")
    if case.status != "committee":
        raise CaseError("This case is not open for committee scoring.")
    if own_vote(case, user) is not None:
        raise CaseError("You have already scored this case.")
    if score not in RADPEER_SCORES:
        raise CaseError("Choose a RADPEER score.")
    if score != "1" and not (comment or "").strip():
        raise CaseError("Explain a discrepancy score in a comment.")
    vote = CommitteeVote(user_id=user.id, round=case.round, score=score,
                         comment=(comment or "").strip(), voted_at=utcnow())
    case.votes.append(vote)
    _event(case, "voted", user)
    db.session.flush()
    audit.record("discrepancy.voted", case, actor=user, round=case.round)
    if case.all_voted():
        for manager in qa_managers():
            notify(manager, "discrepancy.scored",
                   "All committee members have scored a discrepancy case.",
                   f"/qa/cases/{case.id}")
    return vote


def visible_votes(case: DiscrepancyCase, user: User) -> list[CommitteeVote]:
    """Return the votes the user may see: QA all; a member their own until everyone scored."""
    votes = case.round_votes()
    if user.has_role("qa_manager") or case.all_voted():
        return votes
    return [v for v in votes if v.user_id == user.id]


def under_rereview(case: DiscrepancyCase) -> bool:
    """Return True while a disputed decision is being re-scored by the committee."""
    return case.status == "committee" and case.decided_at is not None


def decided_round(case: DiscrepancyCase) -> int | None:
    """Return the round whose decision stands (the one the reader is shown), if any."""
    if case.decided_at is None:
        return None
    return case.round - 1 if under_rereview(case) else case.round


def decided_votes(case: DiscrepancyCase) -> list[CommitteeVote]:
    """Return the votes behind the standing decision: never a round still being scored."""
    rnd = decided_round(case)
    return [v for v in case.votes if v.round == rnd]


def record_decision(case: DiscrepancyCase, by: User, *, final_score: str, outcome: str,
                    rationale: str) -> None:
    """Record the consensus score and outcome; the feedback goes to the reader."""
    if case.status != "committee":
        raise CaseError("A decision needs a committee that has scored.")
    if not case.all_voted():
        raise CaseError("Wait until every committee member has scored.")
    if final_score not in RADPEER_SCORES or outcome not in OUTCOMES:
        raise CaseError("Choose a final score and an outcome.")
    if not (rationale or "").strip():
        raise CaseError("Give the rationale for the decision.")
    case.final_score, case.outcome = final_score, outcome
    case.rationale = rationale.strip()
    case.decided_by_id, case.decided_at = by.id, utcnow()
    _set_status(case, "decided")
    _event(case, "decided", by, note=f"{final_score} {outcome}")
    db.session.flush()
    audit.record("discrepancy.decided", case, actor=by, final_score=final_score,
                 outcome=outcome, round=case.round)
    reader, _ = parties(case)
    notify(reader, "discrepancy.feedback",
           "Peer-review feedback on one of your reads is ready for you.",
           f"/reviews/feedback/{case.id}")


def acknowledge(case: DiscrepancyCase, reader: User, response: str = "") -> None:
    """The reader acknowledges the feedback (optionally responding); the case closes."""
    if case.status != "decided":
        raise CaseError("There is no feedback waiting for acknowledgement.")
    now = utcnow()
    case.reader_response = (response or "").strip()
    case.acknowledged_at = now
    _event(case, "acknowledged", reader, note=case.reader_response)
    _set_status(case, "closed")
    case.closed_at = now
    _event(case, "closed", reader)
    db.session.flush()
    audit.record("discrepancy.acknowledged", case, actor=reader,
                 responded=bool(case.reader_response))


def dispute(case: DiscrepancyCase, reader: User, response: str) -> None:
    """The reader disputes the decision: the case returns to the committee for a new round."""
    if case.status != "decided":
        raise CaseError("Only a decided case can be disputed.")
    if not (response or "").strip():
        raise CaseError("Explain why you dispute the decision.")
    case.reader_response = response.strip()
    case.disputed_at = utcnow()
    _event(case, "disputed", reader, note=case.reader_response)
    case.round += 1
    _set_status(case, "committee")
    db.session.flush()
    audit.record("discrepancy.disputed", case, actor=reader, round=case.round)
    for member in case.members:
        notify(member.user, "discrepancy.disputed",
               "A decision you scored was disputed; please score the case again.",
               f"/reviews/committee/{case.id}")
    for manager in qa_managers():
        notify(manager, "discrepancy.disputed", "A reader disputed a discrepancy decision.",
               f"/qa/cases/{case.id}")
