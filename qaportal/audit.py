"""Record audit events into a hash chain (qaportal.audit_verify checks it).

Each entry's hash is SHA-256 over a canonical JSON serialisation of its content
and the previous entry's hash, so changing, removing or inserting any row breaks
the chain. Writers serialise on the single `audit_head` row: the UPDATE takes a
row lock on PostgreSQL and the write lock on SQLite, so concurrent requests
cannot fork the chain. Inside `batched()` a transaction's entries are chained and
written together when the block ends (one head update for all, not one per entry).

The chain is anchored outside the database (qaportal/audit_anchor.py): every entry also
carries an HMAC of its hash under a key the database never sees, and checkpoints of the
head go to an append-only file and syslog. audit_verify.verify() checks all three. The head
also holds the audit key's fingerprint (qaportal/audit_key.py): an entry is never written
under another key.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app, has_request_context, request
from flask_login import current_user
from sqlalchemy.orm import Session

from qaportal import audit_anchor, audit_key
from qaportal.extensions import db
from qaportal.models import AuditEvent, AuditHead, User, utcnow

GENESIS = "0" * 64
_BATCHED = "qaportal.audit.batched"  # session.info: the entries a batched() block holds


@sa.event.listens_for(AuditHead.__table__, "after_create")
def _seed_head(target, connection, **kw) -> None:
    connection.execute(target.insert().values(id=1, seq=0, entry_hash=GENESIS))


def _iso(ts: datetime) -> str:
    """YYYY-MM-DDTHH:MM:SS.ffffffZ in UTC (isoformat: the same text as strftime, faster)."""
    return ts.astimezone(UTC).isoformat(timespec="microseconds")[:26] + "Z"


def _canonical(value: Any) -> Any:
    """Return value as it will read back from a JSON column."""
    return json.loads(json.dumps(value, default=str, sort_keys=True))


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def entry_hash(fields: dict[str, Any]) -> str:
    """Return the SHA-256 of an entry's canonical serialisation."""
    return hashlib.sha256(_ENCODER.encode(fields).encode("ascii")).hexdigest()


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
    ev = AuditEvent(
        actor_id=actor.id if actor is not None else None,
        actor_label=label,
        action=action,
        object_type=object_type,
        object_id=object_id,
        source_ip=ip,
        details=_canonical(details),
    )
    held = session.info.get(_BATCHED)
    if held is not None:
        held.append(ev)
    else:
        _append(session, [ev])
    return ev


@contextlib.contextmanager
def batched(session: Session | None = None) -> Iterator[None]:
    """Hold the entries recorded inside and write them, chained in order, when the block
    ends without error (in the caller's transaction; the caller commits): one head
    update and one insert for all of them instead of three statements each. An error
    drops them (the caller's transaction rolls back). Nested blocks write with the
    outermost."""
    session = session or db.session
    if _BATCHED in session.info:
        yield
        return
    held: list[AuditEvent] = []
    session.info[_BATCHED] = held
    try:
        yield
    finally:
        session.info.pop(_BATCHED, None)
    if held:
        _append(session, held)


def _append(session: Session, events: list[AuditEvent]) -> None:
    """Chain events after the head (taking its lock) and add them to the session."""
    # The head's table, not its class: an ORM UPDATE would first look for AuditHead objects
    # to synchronise among every object the request has loaded (~1 ms on a list page).
    head_t = AuditHead.__table__
    last, prev, recorded_key = session.execute(
        sa.update(head_t)
        .where(head_t.c.id == 1)
        .values(seq=head_t.c.seq + len(events))
        .returning(head_t.c.seq, head_t.c.entry_hash, head_t.c.key_fingerprint)
    ).one()
    app = current_app._get_current_object()
    if not audit_key.matches(app, recorded_key):
        raise audit_key.AuditKeyMismatch()  # the caller's transaction holds nothing of it
    key = app.config["AUDIT_KEY"]
    for seq, ev in enumerate(events, start=last - len(events) + 1):
        ev.seq = seq
        ev.occurred_at = utcnow()  # taken under the head's lock: in the order of seq
        ev.prev_hash = prev
        ev.entry_hash = prev = entry_hash(_fields(ev))
        ev.entry_mac = audit_anchor.entry_mac(key, ev.entry_hash)
        audit_anchor.schedule(session, seq, ev.entry_hash)
    if len(events) == 1:
        session.add(events[0])
    else:  # one statement for all (the objects stay out of the session, without their id)
        session.execute(sa.insert(AuditEvent), [
            {**_fields(ev), "entry_hash": ev.entry_hash, "entry_mac": ev.entry_mac,
             "occurred_at": ev.occurred_at} for ev in events])
    head = {"entry_hash": prev}
    if recorded_key is None:  # the first entry since migration 0022 records the key's
        head["key_fingerprint"] = audit_key.app_fingerprint(app)
    session.execute(sa.update(head_t).where(head_t.c.id == 1).values(**head))


_VERIFY_NAMES = {"MAC_MISMATCH", "NO_MAC", "Verification", "anchor_head", "verify"}


def __getattr__(name: str) -> Any:
    """Verification lives in qaportal.audit_verify; audit.verify and friends still work
    (looked up on first use, as that module imports this one)."""
    if name in _VERIFY_NAMES:
        from qaportal import audit_verify

        return getattr(audit_verify, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
