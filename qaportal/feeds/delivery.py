"""Deliveries of signed results to the requesting site: the outbox and its state machine.

Destination rule: a signed opinion (or addendum) goes to the *requesting site*, i.e. every
active known peer owned by the study's owner whose result destination is set (send_kind
other than "none"). One `Delivery` row per object and peer is written in the transaction of
the signature; its job is queued once that commits. Each attempt claims the row with a
conditional UPDATE (status 'queued' and due -> 'sending'), so two workers never send the
same delivery at once, on SQLite as on PostgreSQL. A failed attempt is retried with
exponential backoff until DELIVERY_MAX_ATTEMPTS, then the delivery is 'failed' with the
reason; a manual resend queues it again. Every attempt is audited (no patient data).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from qaportal import audit
from qaportal.extensions import db
from qaportal.jobs import enqueue_after_commit, queue
from qaportal.models import Delivery, DicomPeer, OpinionAddendum, OpinionRequest, User, utcnow
from qaportal.notify import notify

SWEEP_BATCH = 500


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to."""

    ok: bool
    peer_status: str = ""
    detail: str = ""
    sop_instance_uids: tuple[str, ...] = ()
    final: bool = False  # no point retrying (the destination was switched off)


def destinations(req: OpinionRequest) -> list[DicomPeer]:
    """The requesting site's result destinations: active peers owned by the study's owner
    that take results back."""
    return list(db.session.scalars(
        sa.select(DicomPeer).where(DicomPeer.owner_id == req.study.owner_id,
                                   DicomPeer.active.is_(True), DicomPeer.send_kind != "none")
        .order_by(DicomPeer.id)))


def create_deliveries(req: OpinionRequest, addendum: OpinionAddendum | None = None,
                      actor: User | None = None) -> list[Delivery]:
    """Write the outbox rows of a signed object in the caller's transaction; their jobs are
    queued when it commits."""
    rows = []
    for peer in destinations(req):
        row = Delivery(request_id=req.id, addendum_id=addendum.id if addendum else None,
                       peer_id=peer.id, status="queued", next_attempt_at=utcnow())
        db.session.add(row)
        rows.append((row, peer))
    if rows:
        db.session.flush()
    for row, peer in rows:
        audit.record("delivery.queued", req, actor=actor, delivery_id=row.id,
                     peer=peer.ae_title, object=row.object_label)
        enqueue_after_commit(db.session, "deliver", row.id)
    return [row for row, _ in rows]


def retry_delay(attempts: int) -> float:
    """Seconds before the next attempt after `attempts` failed ones (doubling, capped)."""
    cfg = current_app.config
    base = float(cfg["DELIVERY_RETRY_BASE_SECONDS"])
    return min(base * 2 ** max(attempts - 1, 0), float(cfg["DELIVERY_RETRY_MAX_SECONDS"]))


def _update(delivery_id: int, *conditions, **values) -> bool:
    """Change one delivery only where the conditions still hold; True when it did."""
    result = db.session.execute(
        sa.update(Delivery).where(Delivery.id == delivery_id, *conditions).values(**values)
        .execution_options(synchronize_session=False))
    return result.rowcount == 1


def claim(delivery_id: int) -> int | None:
    """Take a due, queued delivery for one attempt; return the attempt's number, or None
    when another worker has it, it is not due, or it is no longer queued. Commits."""
    now = utcnow()
    lease = timedelta(seconds=float(current_app.config["DELIVERY_LEASE_SECONDS"]))
    won = _update(delivery_id, Delivery.status == "queued", Delivery.next_attempt_at <= now,
                  status="sending", attempts=Delivery.attempts + 1, last_attempt_at=now,
                  next_attempt_at=now + lease)
    attempt_no = db.session.scalar(sa.select(Delivery.attempts)
                                   .where(Delivery.id == delivery_id)) if won else None
    db.session.commit()
    return attempt_no


def _send(delivery: Delivery) -> Outcome:
    """Build the signed object's DICOM instances and send them to the peer."""
    from qaportal.feeds.results import ResultError, result_datasets
    from qaportal.feeds.send import send_datasets

    peer = delivery.peer
    if not peer.active or peer.send_kind == "none":
        return Outcome(False, detail="the destination was switched off", final=True)
    try:
        datasets = result_datasets(delivery.request, delivery.addendum)
        db.session.commit()  # the case packet rendered for it is kept (and reused)
    except ResultError as exc:  # no point retrying: the message names no patient data
        db.session.rollback()
        return Outcome(False, detail=f"the result objects cannot be built: {exc}", final=True)
    except Exception as exc:  # noqa: BLE001 - a failed render is retried like a failed send
        db.session.rollback()
        current_app.logger.exception("delivery %s: building the result objects failed",
                                     delivery.id)
        return Outcome(False, detail="the result objects could not be built "
                                     f"({type(exc).__name__})")
    uids = tuple(str(ds.SOPInstanceUID) for ds in datasets)
    try:
        result = send_datasets(peer, datasets)
    except Exception as exc:  # noqa: BLE001 - the sender reports failures; this is a bug
        current_app.logger.exception("delivery %s: sending failed", delivery.id)
        return Outcome(False, detail=f"sending failed ({type(exc).__name__})")
    status = "" if result.peer_status is None else str(result.peer_status)
    return Outcome(bool(result.ok), status, str(result.detail or ""), uids)


def attempt(delivery_id: int) -> None:
    """One attempt at a delivery (the job): claim, send, record the outcome."""
    number = claim(delivery_id)
    if number is None:
        _reschedule_if_early(delivery_id)
        return
    delivery = db.session.get(Delivery, delivery_id)
    outcome = _send(delivery)
    db.session.rollback()  # nothing the build may have loaded stays in this transaction
    record_outcome(delivery_id, number, outcome)


def _reschedule_if_early(delivery_id: int) -> None:
    """A job that ran before its delivery was due (clocks apart) comes back when it is."""
    row = db.session.get(Delivery, delivery_id)
    if row is not None and row.status == "queued" and row.next_attempt_at is not None:
        wait = (row.next_attempt_at - utcnow()).total_seconds()
        if wait > 0:
            queue().enqueue("deliver", delivery_id, delay=wait)
    db.session.rollback()


def record_outcome(delivery_id: int, number: int, outcome: Outcome) -> str | None:
    """Store an attempt's outcome (only if the delivery is still that attempt's) and audit
    it; return the new status."""
    now = utcnow()
    row = db.session.get(Delivery, delivery_id)
    mine = (Delivery.status == "sending", Delivery.attempts == number)
    detail = outcome.detail[:500]
    if outcome.ok:
        new = "sent"
        values = dict(status="sent", sent_at=now, next_attempt_at=None, last_error="",
                      peer_status=outcome.peer_status[:64],
                      sop_instance_uids=list(outcome.sop_instance_uids))
    elif outcome.final or number >= int(current_app.config["DELIVERY_MAX_ATTEMPTS"]):
        new = "failed"
        values = dict(status="failed", next_attempt_at=None, last_error=detail,
                      peer_status=outcome.peer_status[:64])
    else:
        new = "queued"
        delay = retry_delay(number)
        values = dict(status="queued", next_attempt_at=now + timedelta(seconds=delay),
                      last_error=detail, peer_status=outcome.peer_status[:64])
    if not _update(delivery_id, *mine, **values):
        db.session.rollback()  # the lease ran out and the sweep took it back meanwhile
        return None
    audit.record("delivery.attempt", ("opinion_requests", row.request_id),
                 actor_label="worker", delivery_id=delivery_id, peer=row.peer.ae_title,
                 object=row.object_label, attempt=number, ok=outcome.ok,
                 peer_status=outcome.peer_status[:64], outcome=new,
                 error=None if outcome.ok else detail[:200])
    if new == "failed":
        req = row.request
        notify(req.requester, "delivery.failed",
               f"The signed {row.object_label} of request #{req.id} could not be sent to "
               f"{row.peer.ae_title}", f"/opinions/{req.id}#deliveries")
    db.session.commit()
    if new == "queued":
        queue().enqueue("deliver", delivery_id, delay=values["next_attempt_at"].timestamp()
                        - utcnow().timestamp())
    return new


def sweep() -> int:
    """Take back deliveries whose attempt outlived its lease and queue every due one;
    return how many jobs were queued."""
    now = utcnow()
    max_attempts = int(current_app.config["DELIVERY_MAX_ATTEMPTS"])
    lost = "the attempt did not finish (the worker stopped)"
    stale = (Delivery.status == "sending", Delivery.next_attempt_at <= now)
    db.session.execute(
        sa.update(Delivery).where(*stale, Delivery.attempts >= max_attempts)
        .values(status="failed", next_attempt_at=None, last_error=lost)
        .execution_options(synchronize_session=False))
    db.session.execute(
        sa.update(Delivery).where(*stale).values(status="queued", next_attempt_at=now,
                                                 last_error=lost + "; retried")
        .execution_options(synchronize_session=False))
    due = list(db.session.scalars(
        sa.select(Delivery.id).where(Delivery.status == "queued",
                                     Delivery.next_attempt_at <= now)
        .order_by(Delivery.next_attempt_at).limit(SWEEP_BATCH)))
    db.session.commit()
    jobs = queue()
    for delivery_id in due:
        jobs.enqueue("deliver", delivery_id)
    return len(due)


def can_resend(user: User, req: OpinionRequest) -> bool:
    """The requester, the study's owner, QA managers and admins may send a result again."""
    return (user.id in (req.requester_id, req.study.owner_id)
            or user.has_role("qa_manager", "admin"))


def resend(delivery: Delivery, user: User) -> bool:
    """Queue a sent or failed delivery again with a fresh count of attempts; the caller
    commits. False when it is already queued or being sent."""
    if not _update(delivery.id, Delivery.status.in_(("sent", "failed")), status="queued",
                   attempts=0, next_attempt_at=utcnow()):
        return False
    db.session.refresh(delivery)
    audit.record("delivery.resend", ("opinion_requests", delivery.request_id), actor=user,
                 delivery_id=delivery.id, peer=delivery.peer.ae_title,
                 object=delivery.object_label)
    enqueue_after_commit(db.session, "deliver", delivery.id)
    return True


def deliveries_of(req: OpinionRequest) -> list[Delivery]:
    """The request's deliveries, opinion first, then addenda, by peer."""
    return list(db.session.scalars(
        sa.select(Delivery).where(Delivery.request_id == req.id)
        .order_by(Delivery.addendum_id.is_not(None), Delivery.addendum_id, Delivery.peer_id)))
