"""Verify the audit chain: every hash, link and MAC, against the anchor file's checkpoints.

A full pass reads every entry once, in seq order, as plain rows streamed from the database
(no ORM objects), so memory stays flat; a long pass is checked in ranges by worker
processes (qaportal.audit_ranges), with exactly a single pass's verdict. An intact
pass writes a *verified* checkpoint of the head; an incremental pass starts from the last
such checkpoint (its entry is re-hashed and must still match it) and checks only what was
written since. Entries before that checkpoint are not re-read: run a full pass on a
schedule as well (docs/deployment.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from qaportal import audit_anchor, audit_ranges
from qaportal.audit import GENESIS, entry_hash
from qaportal.extensions import db
from qaportal.models import AuditEvent, AuditHead

MAC_MISMATCH = ("its MAC does not match: the entry was written or rewritten without the "
                "audit key")
NO_MAC = "it carries no MAC although it was written after anchoring began"


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
    since: int = 0  # incremental: entries 1..since were verified by an earlier pass
    since_at: str | None = None  # when that pass wrote its checkpoint

    def line(self) -> str:
        """Return the one-line verdict audit-verify prints (and the audit page shows)."""
        if self.ok and self.since:
            return (f"audit log intact: {self.count} entries ({self.count - self.since} "
                    f"checked after the verified checkpoint of {self.since_at} at entry "
                    f"{self.since})")
        if self.ok:
            return f"audit log intact: {self.count} entries"
        where = f" at entry {self.bad_seq}" if self.bad_seq is not None else ""
        return (f"audit log broken{where}: {self.reason} "
                f"({self.count} entries verified before it)")


def _start(session: Session, checkpoints: list, head_seq: int):
    """The last verified checkpoint at or before the head, and its entry re-checked.

    Returns (checkpoint, None), (None, None) when there is none, or (checkpoint, failure).
    """
    verified = [cp for cp in checkpoints if cp.verified and cp.seq <= head_seq]
    base = max(verified, key=lambda cp: cp.seq, default=None)
    if base is None:
        return None, None
    row = session.execute(sa.select(*audit_ranges.COLUMNS)
                          .where(AuditEvent.seq == base.seq)).one_or_none()
    where = f"the verified checkpoint of {base.at} (anchor file line {base.line})"
    if row is None:
        return base, Verification(False, 0, base.seq, f"entry {base.seq} of {where} is missing")
    if entry_hash(audit_ranges.fields(row)) != row.entry_hash or row.entry_hash != base.entry_hash:
        return base, Verification(False, 0, base.seq, f"it differs from {where}")
    return base, None


def verify(session: Session | None = None, *, incremental: bool = False) -> Verification:
    """Recompute every hash, link and MAC; check the anchor file's checkpoints against them.

    A broken link or hash is named first, then a bad or missing MAC, then a checkpoint the
    chain does not match (an entry that differs, or a head behind a checkpoint).
    incremental: start from the last verified checkpoint (a full pass when there is none).
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
    base, failure = _start(session, checkpoints, head_seq) if incremental else (None, None)
    if failure is not None:
        return failure
    since = base.seq if base is not None else 0
    anchors: audit_ranges.Anchors = {}
    for seq, cps in by_seq.items():
        anchors[seq] = [(cp.entry_hash, f"it differs from the checkpoint of {cp.at} "
                                        f"(anchor file line {cp.line})") for cp in cps]
    merged = audit_ranges.merge(
        _check(session, since, head_seq, key, legacy, anchors),
        count=since, prev=base.entry_hash if base is not None else GENESIS, legacy=legacy,
        unsigned_prefix=base is None, no_mac=NO_MAC, mac_mismatch=MAC_MISMATCH)
    count, prev, unsigned_prefix = merged.count, merged.prev, merged.unsigned_prefix
    first_mac, first_anchor = merged.first_mac, merged.first_anchor
    if merged.failure is not None:
        return Verification(False, merged.failure[0] - 1, *merged.failure)
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
                        head_hash=prev, since=since,
                        since_at=base.at if base is not None else None)


def _check(session: Session, after: int, upto: int, key: str, legacy: int | None,
           anchors: audit_ranges.Anchors) -> list[audit_ranges.RangeResult]:
    """The entries after..upto, in one range here or, for a long pass, in worker processes
    (AUDIT_VERIFY_WORKERS, from AUDIT_VERIFY_PARALLEL_MIN entries on)."""
    cfg = current_app.config
    workers = int(cfg["AUDIT_VERIFY_WORKERS"]) or os.cpu_count() or 1
    url = session.get_bind().url
    in_memory = url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")
    if workers < 2 or upto - after < int(cfg["AUDIT_VERIFY_PARALLEL_MIN"]) or in_memory:
        return audit_ranges.check_here(session.connection, [(after, upto)], key, legacy,
                                       anchors)
    ranges = audit_ranges.split(after, upto, workers)
    return audit_ranges.check_in_workers(url.render_as_string(hide_password=False), ranges,
                                         key, legacy, anchors, workers)


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
    """Write a verified checkpoint of the head just found intact (each audit-verify run
    does); an incremental run may start from it."""
    if not result.ok or result.count == 0:
        return
    cp = audit_anchor.Checkpoint(result.count, result.head_hash, audit_anchor.now_iso(),
                                 result.legacy, verified=True)
    audit_anchor.append_checkpoint(current_app.config["AUDIT_ANCHOR_FILE"],
                                   current_app.config["AUDIT_KEY"], cp,
                                   current_app.config["AUDIT_SYSLOG"])
