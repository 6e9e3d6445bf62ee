"""The request workflow: ask, claim or accept, decline, cancel, re-route, discuss.

Functions take model objects and the acting user, change them, audit, notify and flush;
the view commits.
"""

from __future__ import annotations

import sqlalchemy as sa

from qaportal import audit
from qaportal.blind_roles import BLIND_HOLDER_REASON, RoleConflict
from qaportal.extensions import db
from qaportal.models import (
    OpinionDecline,
    OpinionMessage,
    OpinionRequest,
    Study,
    User,
    UserRole,
    utcnow,
)
from qaportal.models.credentials import SUBSPECIALTY_LABELS
from qaportal.models.opinion import ACTIVE_STATUSES, PRIORITY_LABELS
from qaportal.notify import notify
from qaportal.opinions.eligibility import (
    ineligibility,
    pool_members,
    request_ineligibility,
    shown_reasons,
)
from qaportal.opinions.sla import due_time
from qaportal.studies.access import grant_access, revoke_access


class OpinionError(Exception):
    """The action is not possible; the message says why, for the user."""


BLIND_HOLDER_MESSAGE = ("You cannot take this request: you hold a blind role on its study "
                        "(peer review, committee or teaching case), and a second opinion "
                        "would show you who read it.")


class ClaimLost(OpinionError):
    """Someone else claimed the request first."""

    message = "Another consultant claimed this request a moment ago."


def request_link(req: OpinionRequest) -> str:
    """Return the portal path of a request (also usable outside a web request)."""
    return f"/opinions/{req.id}"


def describe(req: OpinionRequest) -> str:
    """Return a patient-free label for messages: priority, number, modality, recipient."""
    where = (f"{SUBSPECIALTY_LABELS.get(req.pool, req.pool)} pool" if req.pool
             else "named colleague")
    modality = req.study.modalities or "study"
    return f"{PRIORITY_LABELS[req.priority]} request #{req.id} ({modality}, {where})"


def _source(req: OpinionRequest) -> tuple[str, int]:
    return ("opinion_request", req.id)


def _mode(req: OpinionRequest) -> str:
    return "deidentified" if req.deidentified else "full"


def _check_colleague(colleague: User, study: Study, requester_id: int) -> None:
    """Refuse a named colleague who may not answer; never say that they review it blind."""
    reasons = ineligibility(colleague, study, requester_id=requester_id, pool=None)
    if reasons:
        shown = shown_reasons(reasons)
        why = f": {'; '.join(shown)}" if shown else " for this study"
        raise OpinionError(f"{colleague.full_name} cannot be asked{why}.")


def _refuse_ineligible(reasons: tuple[str, ...]) -> None:
    """Tell a would-be consultant why they cannot take the request."""
    if BLIND_HOLDER_REASON in reasons:
        raise OpinionError(BLIND_HOLDER_MESSAGE)
    if reasons:
        raise OpinionError(f"You cannot take this request: {'; '.join(reasons)}.")


def create_request(study: Study, requester: User, *, priority: str, question: str,
                   history: str = "", preliminary: str = "", request_type: str = "opinion",
                   criteria: str = "", colleague: User | None = None, pool: str | None = None,
                   deidentified: bool = False) -> OpinionRequest:
    """Open a request to a named colleague or a subspecialty pool and notify them."""
    if (colleague is None) == (pool is None):
        raise OpinionError("Choose either a colleague or a subspecialty pool.")
    if not study.jurisdiction:
        raise OpinionError("Set the study's jurisdiction first: consultants are chosen by "
                           "their licence for it.")
    if request_type == "coverage_review" and not criteria.strip():
        raise OpinionError("A coverage review needs the payer's question or criteria.")
    if colleague is not None:
        _check_colleague(colleague, study, requester.id)
        members = [colleague]
    else:
        members = pool_members(study, requester.id, pool)
        if not members:
            raise OpinionError("Nobody in that pool is eligible for this study (licence for "
                               f"{study.jurisdiction}).")
    now = utcnow()
    req = OpinionRequest(
        study=study, requester=requester, request_type=request_type,
        clinical_question=question.strip(), clinical_history=history.strip(),
        preliminary_read=preliminary.strip(),
        payer_criteria=criteria.strip() if request_type == "coverage_review" else "",
        priority=priority, pool=pool, deidentified=deidentified, status="open",
        named_consultant=colleague, consultant=colleague,
        requested_at=now, due_at=due_time(priority, now),
    )
    db.session.add(req)
    db.session.flush()
    audit.record("opinion.requested", req, actor=requester, study_id=study.id,
                 priority=priority, pool=pool, colleague_id=colleague.id if colleague else None,
                 deidentified=deidentified, request_type=request_type)
    for member in members:
        notify(member, "opinion.new", f"New {describe(req)} from {requester.full_name}",
               request_link(req))
    return req


def update_if(req: OpinionRequest, *conditions, **values) -> bool:
    """Change the request's row only where `conditions` still hold, so the database decides
    between simultaneous users; reload the request; True when this call made the change."""
    db.session.flush()
    result = db.session.execute(
        sa.update(OpinionRequest)
        .where(OpinionRequest.id == req.id, *conditions)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(req)
    return result.rowcount == 1


def claim(req: OpinionRequest, user: User) -> None:
    """Take an open pool request; exactly one of several simultaneous claims wins."""
    if req.pool is None:
        raise OpinionError("This request was sent to a named colleague; it cannot be claimed.")
    _refuse_ineligible(request_ineligibility(user, req))
    if any(d.user_id == user.id for d in req.declines):
        raise OpinionError("You declined this request earlier.")
    if not update_if(req, OpinionRequest.status == "open", OpinionRequest.consultant_id.is_(None),
                     status="accepted", consultant_id=user.id, accepted_at=utcnow()):
        if req.status == "cancelled":
            raise OpinionError("The requester cancelled this request.")
        raise ClaimLost(ClaimLost.message)
    _start_work(req, user, "opinion.claimed")


def accept(req: OpinionRequest, user: User) -> None:
    """Accept a request sent to the user by name."""
    _refuse_ineligible(request_ineligibility(user, req))
    if not update_if(req, OpinionRequest.status == "open", OpinionRequest.consultant_id == user.id,
                     status="accepted", accepted_at=utcnow()):
        raise OpinionError("This request is no longer waiting for you.")
    _start_work(req, user, "opinion.accepted")


def _start_work(req: OpinionRequest, user: User, action: str) -> None:
    try:
        grant_access(req.study, user, mode=_mode(req), source=_source(req), by=user)
    except RoleConflict:  # a blind role taken since the check above: the view rolls back
        _refuse_ineligible((BLIND_HOLDER_REASON,))
    audit.record(action, req, actor=user, mode=_mode(req))
    verb = "claimed" if action == "opinion.claimed" else "accepted"
    notify(req.requester, action, f"{user.full_name} {verb} your {describe(req)}",
           request_link(req))


def decline(req: OpinionRequest, user: User, reason: str) -> None:
    """Decline with a reason: a pool request returns to the pool, a named one to the requester."""
    if req.consultant_id != user.id or req.status not in ("open", "accepted"):
        raise OpinionError("Only the consultant holding the request can decline it.")
    if not reason.strip():
        raise OpinionError("Give a reason.")
    req.declines.append(OpinionDecline(user=user, reason=reason.strip()))
    revoke_access(req.study, user, source=_source(req), by=user)
    req.consultant = None
    req.accepted_at = None
    req.first_viewed_at = None
    req.status = "open" if req.pool else "declined"
    db.session.flush()
    audit.record("opinion.declined", req, actor=user, returned_to="pool" if req.pool
                 else "requester")
    where = "It is back in the pool." if req.pool else "Choose another colleague or pool."
    notify(req.requester, "opinion.declined",
           f"{user.full_name} declined your {describe(req)}. {where}", request_link(req))
    if req.pool:
        for member in pool_members(req.study, req.requester_id, req.pool):
            if member.id != user.id:
                notify(member, "opinion.new", f"{describe(req)} is back in the pool",
                       request_link(req))


def reroute(req: OpinionRequest, user: User, *, colleague: User | None = None,
            pool: str | None = None) -> None:
    """Send a declined request to another colleague or a pool; the clock keeps running."""
    if user.id != req.requester_id or req.status != "declined":
        raise OpinionError("Only a declined request can be sent elsewhere, by its requester.")
    if (colleague is None) == (pool is None):
        raise OpinionError("Choose either a colleague or a subspecialty pool.")
    if colleague is not None:
        _check_colleague(colleague, req.study, user.id)
        members = [colleague]
    else:
        members = pool_members(req.study, user.id, pool)
        if not members:
            raise OpinionError("Nobody in that pool is eligible for this study.")
    req.pool = pool
    req.named_consultant = colleague
    req.consultant = colleague
    req.status = "open"
    db.session.flush()
    audit.record("opinion.rerouted", req, actor=user, pool=pool,
                 colleague_id=colleague.id if colleague else None)
    for member in members:
        notify(member, "opinion.new", f"New {describe(req)} from {user.full_name}",
               request_link(req))


def cancel(req: OpinionRequest, user: User, reason: str) -> None:
    """Withdraw a request before its opinion is signed.

    The status changes by a conditional UPDATE, so a cancel racing a signature or a claim
    sees what happened first: a signed request stays signed (the cancel is refused), and a
    request claimed a moment ago is cancelled and its new consultant's access revoked.
    """
    if user.id != req.requester_id:
        raise OpinionError("Only the requester can cancel a request.")
    if not req.is_active:
        raise OpinionError("This request is already closed.")
    if not reason.strip():
        raise OpinionError("Give a reason.")
    # update_if re-reads the row: its consultant is whoever claimed it last, not the one on
    # the page the requester loaded.
    if not update_if(req, OpinionRequest.status.in_(ACTIVE_STATUSES), status="cancelled",
                     cancelled_at=utcnow(), cancel_reason=reason.strip()):
        if req.status == "signed":
            raise OpinionError("The opinion was signed a moment ago; a signed request cannot "
                               "be cancelled.")
        raise OpinionError("This request is already closed.")
    consultant = req.consultant
    if consultant is not None:
        revoke_access(req.study, consultant, source=_source(req), by=user)
        notify(consultant, "opinion.cancelled", f"{describe(req)} was cancelled",
               request_link(req))
    db.session.flush()
    audit.record("opinion.cancelled", req, actor=user)


def post_message(req: OpinionRequest, user: User, body: str) -> OpinionMessage:
    """Add a message to the thread and notify the other party."""
    if user.id not in (req.requester_id, req.consultant_id) or req.consultant_id is None:
        raise OpinionError("Messages are between the requester and the consultant.")
    if req.status == "cancelled":
        raise OpinionError("This request was cancelled.")
    if not body.strip():
        raise OpinionError("Write a message.")
    msg = OpinionMessage(request=req, author=user, body=body.strip())
    db.session.add(msg)
    db.session.flush()
    audit.record("opinion.message_posted", req, actor=user, message_id=msg.id)
    other = req.consultant if user.id == req.requester_id else req.requester
    notify(other, "opinion.message", f"New message from {user.full_name} on {describe(req)}",
           request_link(req) + "#thread")
    return msg


def record_view(req: OpinionRequest, user: User, view: str) -> None:
    """Audit a view; the consultant's first look at an accepted request starts that clock."""
    if (view == "full" and req.status == "accepted" and user.id == req.consultant_id
            and req.first_viewed_at is None):
        req.first_viewed_at = utcnow()
    audit.record("opinion.viewed", req, actor=user, view=view)


def qa_managers() -> list[User]:
    """Return the active QA managers, who receive breach escalations."""
    return list(db.session.scalars(
        sa.select(User).where(User.roles.any(UserRole.role == "qa_manager"),
                              User.active.is_(True))
    ))
