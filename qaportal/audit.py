"""Record audit events into a hash chain and verify the chain.

Each entry's hash is SHA-256 over a canonical JSON serialisation of its content
and the previous entry's hash, so changing, removing or inserting any row breaks
the chain. Writers serialise on the single `audit_head` row: the UPDATE takes a
row lock on PostgreSQL and the write lock on SQLite, so concurrent requests
cannot fork the chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import has_request_context, request
from flask_login import current_user
from sqlalchemy.orm import Session

from qaportal.extensions import db
from qaportal.models import AuditEvent, AuditHead, User, utcnow

GENESIS = "0" * 64


@sa.event.listens_for(AuditHead.__table__, "after_create")
def _seed_head(target, connection, **kw) -> None:
    connection.execute(target.insert().values(id=1, seq=0, entry_hash=GENESIS))


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _canonical(value: Any) -> Any:
    """Return value as it will read back from a JSON column."""
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def entry_hash(fields: dict[str, Any]) -> str:
    """Return the SHA-256 of an entry's canonical serialisation."""
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _fields(ev: AuditEvent) -> dict[str, Any]:
    return {
        "seq": ev.seq,
        "occurred_at": _iso(ev.occurred_at),
        "actor_id": ev.actor_id,
        "actor_label": ev.actor_label,
        "action": ev.action,
        "object_type": ev.object_type,
        "object_id": ev.object_id,
        "source_ip": ev.source_ip,
        "details": ev.details,
        "prev_hash": ev.prev_hash,
    }


def _object_ref(obj: Any) -> tuple[str | None, str | None]:
    if obj is None:
        return None, None
    if isinstance(obj, tuple):
        return obj[0], str(obj[1])
    return type(obj).__tablename__, str(obj.id)


def record(
    action: str,
    obj: Any = None,
    *,
    actor: User | None = None,
    actor_label: str | None = None,
    session: Session | None = None,
    **details: Any,
) -> AuditEvent:
    """Append an audit event in the caller's transaction; the caller commits.

    obj is a model instance, a (type, id) tuple, or None. Details must hold no
    patient identifiers: ids and codes only.
    """
    session = session or db.session
    if actor is None and has_request_context() and current_user.is_authenticated:
        actor = current_user._get_current_object()
    label = actor_label or (actor.email if actor is not None else "anonymous")
    ip = request.remote_addr if has_request_context() else None
    object_type, object_id = _object_ref(obj)
    seq, prev = session.execute(
        sa.update(AuditHead)
        .where(AuditHead.id == 1)
        .values(seq=AuditHead.seq + 1)
        .returning(AuditHead.seq, AuditHead.entry_hash)
    ).one()
    ev = AuditEvent(
        seq=seq,
        occurred_at=utcnow(),
        actor_id=actor.id if actor is not None else None,
        actor_label=label,
        action=action,
        object_type=object_type,
        object_id=object_id,
        source_ip=ip,
        details=_canonical(details),
        prev_hash=prev,
    )
    ev.entry_hash = entry_hash(_fields(ev))
    session.add(ev)
    session.execute(
        sa.update(AuditHead).where(AuditHead.id == 1).values(entry_hash=ev.entry_hash)
    )
    return ev


@dataclass
class Verification:
    """The outcome of checking the chain."""

    ok: bool
    count: int
    bad_seq: int | None = None
    reason: str | None = None


def _events(session: Session) -> Iterator[AuditEvent]:
    stmt = sa.select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=1000)
    yield from session.scalars(stmt)


def verify(session: Session | None = None) -> Verification:
    """Recompute every hash and link; report the first entry that does not fit."""
    session = session or db.session
    prev = GENESIS
    expected_seq = 1
    count = 0
    for ev in _events(session):
        if ev.seq != expected_seq:
            return Verification(False, count, expected_seq, f"entry {expected_seq} is missing")
        if ev.prev_hash != prev:
            return Verification(False, count, ev.seq, "link to the previous entry is broken")
        if entry_hash(_fields(ev)) != ev.entry_hash:
            return Verification(False, count, ev.seq, "content does not match its hash")
        prev = ev.entry_hash
        expected_seq += 1
        count += 1
    head = session.get(AuditHead, 1)
    if head is None or head.seq != count or head.entry_hash != prev:
        return Verification(
            False, count, count + 1, "entries after the last one present were removed"
        )
    return Verification(True, count)
