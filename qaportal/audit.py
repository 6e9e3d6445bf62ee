"""Record audit events into a hash chain and verify the chain.

Each entry's hash is SHA-256 over a canonical JSON serialisation of its content
and the previous entry's hash, so changing, removing or inserting any row breaks
the chain. Writers serialise on the single `audit_head` row: the UPDATE takes a
row lock on PostgreSQL and the write lock on SQLite, so concurrent requests
cannot fork the chain.

The chain is anchored outside the database (qaportal/audit_anchor.py): every entry also
carries an HMAC of its hash under a key the database never sees, and checkpoints of the
head go to an append-only file and syslog. verify() checks all three.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app, has_request_context, request
from flask_login import current_user
from sqlalchemy.orm import Session

from qaportal import audit_anchor
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
    ev.entry_mac = audit_anchor.entry_mac(current_app.config["AUDIT_KEY"], ev.entry_hash)
    audit_anchor.schedule(session, seq, ev.entry_hash)
    session.add(ev)
    session.execute(
        sa.update(AuditHead).where(AuditHead.id == 1).values(entry_hash=ev.entry_hash)
    )
    return ev


@dataclass
class Verification:
    """The outcome of checking the chain, its MACs and the anchor file's checkpoints."""

    ok: bool
    count: int
    bad_seq: int | None = None
    reason: str | None = None
    checkpoints: int = 0  # checkpoints in the anchor file, all matched when ok
    legacy: int = 0  # leading entries written before anchoring (no MAC to check)
    head_hash: str = GENESIS

    def line(self) -> str:
        """Return the one-line verdict audit-verify prints (and the audit page shows)."""
        if self.ok:
            return f"audit log intact: {self.count} entries"
        where = f" at entry {self.bad_seq}" if self.bad_seq is not None else ""
        return (f"audit log broken{where}: {self.reason} "
                f"({self.count} entries verified before it)")


def _events(session: Session, upto: int) -> Iterator[AuditEvent]:
    stmt = (sa.select(AuditEvent).where(AuditEvent.seq <= upto).order_by(AuditEvent.seq)
            .execution_options(yield_per=1000))
    yield from session.scalars(stmt)


MAC_MISMATCH = ("its MAC does not match: the entry was written or rewritten without the "
                "audit key")
NO_MAC = "it carries no MAC although it was written after anchoring began"


def verify(session: Session | None = None) -> Verification:
    """Recompute every hash, link and MAC; check the anchor file's checkpoints against them.

    A broken link or hash is named first, then a bad or missing MAC, then a checkpoint the
    chain does not match (an entry that differs, or a head behind a checkpoint).
    """
    session = session or db.session
    cfg = current_app.config
    key = cfg["AUDIT_KEY"]
    # The anchor file before the head, the head before the entries: anything written
    # meanwhile by other requests lies beyond what is checked, never in a gap of it.
    try:
        checkpoints = audit_anchor.read_checkpoints(cfg["AUDIT_ANCHOR_FILE"], key)
    except audit_anchor.AnchorError as exc:
        return Verification(False, 0, None, str(exc))
    head = session.scalar(sa.select(AuditHead).where(AuditHead.id == 1)
                          .execution_options(populate_existing=True))
    head_seq = head.seq if head is not None else 0
    by_seq: dict[int, list[audit_anchor.Checkpoint]] = {}
    for cp in checkpoints:
        by_seq.setdefault(cp.seq, []).append(cp)
    legacy = min((cp.legacy for cp in checkpoints), default=None)
    prev = GENESIS
    expected_seq = 1
    count = 0
    unsigned_prefix = True  # still inside the leading run of entries without a MAC
    first_mac: tuple[int, str] | None = None
    first_anchor: tuple[int, str] | None = None
    for ev in _events(session, head_seq):
        if ev.seq != expected_seq:
            return Verification(False, count, expected_seq, f"entry {expected_seq} is missing")
        if ev.prev_hash != prev:
            return Verification(False, count, ev.seq, "link to the previous entry is broken")
        if entry_hash(_fields(ev)) != ev.entry_hash:
            return Verification(False, count, ev.seq, "content does not match its hash")
        if ev.entry_mac is None:
            allowed = ev.seq <= legacy if legacy is not None else unsigned_prefix
            if not allowed and first_mac is None:
                first_mac = (ev.seq, NO_MAC)
        else:
            unsigned_prefix = False
            if first_mac is None and not audit_anchor.mac_ok(key, ev.entry_hash, ev.entry_mac):
                first_mac = (ev.seq, MAC_MISMATCH)
        for cp in by_seq.get(ev.seq, ()):
            if cp.entry_hash != ev.entry_hash and first_anchor is None:
                first_anchor = (ev.seq, f"it differs from the checkpoint of {cp.at} "
                                        f"(anchor file line {cp.line})")
        prev = ev.entry_hash
        expected_seq += 1
        count += 1
    if head is None or head.seq != count or head.entry_hash != prev:
        return Verification(
            False, count, count + 1, "entries after the last one present were removed"
        )
    if _beyond_head(session, head):
        return Verification(False, count, count + 1,
                            "entries beyond the head are present: the head was moved back")
    if first_mac is not None:
        return Verification(False, count, first_mac[0], first_mac[1])
    if first_anchor is not None:
        return Verification(False, count, first_anchor[0], first_anchor[1])
    beyond = max(checkpoints, key=lambda cp: cp.seq, default=None)
    if beyond is not None and beyond.seq > count:
        return Verification(
            False, count, count + 1,
            f"the chain ends at entry {count} but the checkpoint of {beyond.at} (anchor file "
            f"line {beyond.line}) saw entry {beyond.seq}: later entries were removed")
    if legacy is None:
        legacy = count if unsigned_prefix else _unsigned_prefix(session)
    return Verification(True, count, checkpoints=len(checkpoints), legacy=legacy,
                        head_hash=prev)


def _beyond_head(session: Session, head: AuditHead) -> bool:
    """Return whether entries past the head exist that no later head accounts for."""
    last = session.scalar(sa.select(sa.func.max(AuditEvent.seq)))
    if last is None or last <= head.seq:
        return False
    # A writer commits its entry and the head together: entries written since the head
    # was read come with a head at least as far on.
    session.refresh(head)
    return last > head.seq


def _unsigned_prefix(session: Session) -> int:
    first = session.scalar(sa.select(sa.func.min(AuditEvent.seq))
                           .where(AuditEvent.entry_mac.is_not(None)))
    return (first or 1) - 1


def anchor_head(result: Verification) -> None:
    """Write a checkpoint of the head just verified intact (each audit-verify run does)."""
    if not result.ok or result.count == 0:
        return
    cp = audit_anchor.Checkpoint(result.count, result.head_hash, audit_anchor.now_iso(),
                                 result.legacy)
    audit_anchor.append_checkpoint(current_app.config["AUDIT_ANCHOR_FILE"],
                                   current_app.config["AUDIT_KEY"], cp,
                                   current_app.config["AUDIT_SYSLOG"])
