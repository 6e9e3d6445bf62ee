"""The audit chain checked in consecutive ranges of seq, in worker processes when it is long.

A full pass over millions of entries is CPU-bound in Python (decoding rows, the canonical
JSON, SHA-256, HMAC): one process keeps one core busy. `check_range` checks one range on
its own (every rule that needs only the range's rows, with the range's first link left to
the caller) and returns what `merge` needs to reach, in seq order, exactly the verdict a
single pass would: the first missing entry, broken link or hash; the first bad or missing
MAC; the first entry that differs from a checkpoint. `qaportal.audit_verify.verify` always
goes through these two, with one range in process or, for a long pass, one range per
worker process (AUDIT_VERIFY_WORKERS), each on a connection of its own.
"""

from __future__ import annotations

import hashlib
import hmac
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from qaportal.audit import _iso, entry_hash
from qaportal.models import AuditEvent

COLUMNS = (AuditEvent.seq, AuditEvent.occurred_at, AuditEvent.actor_id,
            AuditEvent.actor_label, AuditEvent.action, AuditEvent.object_type,
            AuditEvent.object_id, AuditEvent.source_ip, AuditEvent.details,
            AuditEvent.prev_hash, AuditEvent.entry_hash, AuditEvent.entry_mac)
_BATCH = 5000

# (seq, entry hash the checkpoint saw, the message naming the checkpoint)
Anchors = dict[int, list[tuple[str, str]]]


def fields(row: Any) -> dict[str, Any]:
    """The hashed content of a streamed row (the same as audit._fields of an entry)."""
    (seq, occurred_at, actor_id, actor_label, action, object_type, object_id, source_ip,
     details, prev_hash) = row[:10]
    return {"seq": seq, "occurred_at": _iso(occurred_at), "actor_id": actor_id,
            "actor_label": actor_label, "action": action, "object_type": object_type,
            "object_id": object_id, "source_ip": source_ip, "details": details,
            "prev_hash": prev_hash}


def rows(conn: sa.Connection, after: int, upto: int) -> Iterator[Any]:
    """Entries after..upto in seq order as plain Core rows, streamed in batches (a
    server-side cursor on PostgreSQL)."""
    stmt = (sa.select(*COLUMNS).where(AuditEvent.seq > after, AuditEvent.seq <= upto)
            .order_by(AuditEvent.seq))
    result = conn.execute(stmt, execution_options={"yield_per": _BATCH})
    for batch in result.partitions():
        yield from batch


@dataclass
class RangeResult:
    """What one range holds, up to its first hard failure (nothing after it is read)."""

    after: int
    first_seq: int | None = None  # the first row's seq and link (None: no row at all)
    first_prev: str | None = None
    last_seq: int | None = None  # the last row checked sound, and its hash
    last_digest: str | None = None
    stop: tuple[int, str] | None = None  # (seq, reason): missing entry, link or hash
    first_signed: int | None = None  # the first entry with a MAC
    first_unsigned: int | None = None  # the first without one
    unsigned_after_signed: int | None = None  # the first without one after first_signed
    unsigned_over_legacy: int | None = None  # the first without one beyond `legacy`
    mac_mismatch: int | None = None  # the first whose MAC does not match
    anchor: tuple[int, str] | None = None  # the first entry differing from a checkpoint


def check_range(conn: sa.Connection, after: int, upto: int, key: str, legacy: int | None,
                anchors: Anchors) -> RangeResult:
    """Check entries after..upto; the first row's link is the caller's to check."""
    out = RangeResult(after)
    keyed = hmac.new(key.encode(), digestmod=hashlib.sha256)
    prev: str | None = None
    expected = after + 1
    for row in rows(conn, after, upto):
        seq = row.seq
        if out.first_seq is None:
            out.first_seq, out.first_prev = seq, row.prev_hash
        if seq != expected:
            out.stop = (expected, f"entry {expected} is missing")
            break
        if prev is not None and row.prev_hash != prev:
            out.stop = (seq, "link to the previous entry is broken")
            break
        digest = entry_hash(fields(row))
        if digest != row.entry_hash:
            out.stop = (seq, "content does not match its hash")
            break
        if row.entry_mac is None:
            if out.first_unsigned is None:
                out.first_unsigned = seq
            if out.first_signed is not None and out.unsigned_after_signed is None:
                out.unsigned_after_signed = seq
            if legacy is not None and seq > legacy and out.unsigned_over_legacy is None:
                out.unsigned_over_legacy = seq
        else:
            if out.first_signed is None:
                out.first_signed = seq
            if out.mac_mismatch is None:
                mac = keyed.copy()
                mac.update(digest.encode("ascii"))
                if not hmac.compare_digest(mac.hexdigest(), row.entry_mac):
                    out.mac_mismatch = seq
        if out.anchor is None:
            for seen, message in anchors.get(seq, ()):
                if seen != digest:
                    out.anchor = (seq, message)
                    break
        prev = digest
        out.last_seq, out.last_digest = seq, digest
        expected = seq + 1
    return out


@dataclass
class Merged:
    """The single-pass verdict of consecutive ranges."""

    count: int  # entries checked sound, in order, from the start
    prev: str  # the hash of the last of them
    failure: tuple[int, str] | None = None  # a hard failure: (seq, reason)
    first_mac: tuple[int, str] | None = None
    first_anchor: tuple[int, str] | None = None
    unsigned_prefix: bool = True  # still inside the leading run of entries without a MAC


def merge(results: list[RangeResult], *, count: int, prev: str, legacy: int | None,
          unsigned_prefix: bool, no_mac: str, mac_mismatch: str) -> Merged:
    """Combine ranges (in seq order, starting after entry `count` of hash `prev`)."""
    out = Merged(count, prev, unsigned_prefix=unsigned_prefix)
    for r in results:
        if r.first_seq is None:
            continue  # an empty range: a later row (if any) is found missing below
        if r.first_seq != out.count + 1:
            out.failure = (out.count + 1, f"entry {out.count + 1} is missing")
            return out
        if r.first_prev != out.prev:
            out.failure = (r.first_seq, "link to the previous entry is broken")
            return out
        if r.stop is not None:
            out.failure = r.stop
            return out
        if out.first_mac is None:
            if legacy is not None:
                no_mac_at = r.unsigned_over_legacy
            else:
                no_mac_at = r.unsigned_after_signed if out.unsigned_prefix else r.first_unsigned
            found = [(seq, why) for seq, why in ((no_mac_at, no_mac),
                                                 (r.mac_mismatch, mac_mismatch))
                     if seq is not None]
            if found:
                out.first_mac = min(found)
        out.unsigned_prefix = out.unsigned_prefix and r.first_signed is None
        if out.first_anchor is None and r.anchor is not None:
            out.first_anchor = r.anchor
        out.count, out.prev = r.last_seq, r.last_digest
    return out


def split(after: int, upto: int, parts: int) -> list[tuple[int, int]]:
    """Consecutive ranges (after, upto] of about equal size; at least one."""
    size = max(1, -(-(upto - after) // max(1, parts)))
    bounds = list(range(after, upto, size)) or [after]
    return [(lo, min(lo + size, upto)) for lo in bounds]


def _check_in_child(url: str, after: int, upto: int, key: str, legacy: int | None,
                    anchors: Anchors) -> RangeResult:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return check_range(conn, after, upto, key, legacy, anchors)
    finally:
        engine.dispose()


def check_in_workers(url: str, ranges: list[tuple[int, int]], key: str, legacy: int | None,
                     anchors: Anchors, workers: int) -> list[RangeResult]:
    """Each range in a worker process (spawned: a forked child would share the parent's
    database sockets), on a connection of its own; results in range order."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = [pool.submit(_check_in_child, url, lo, hi, key, legacy, anchors)
                   for lo, hi in ranges]
        return [f.result() for f in futures]


def check_here(conn_for: Callable[[], sa.Connection], ranges: list[tuple[int, int]],
               key: str, legacy: int | None, anchors: Anchors) -> list[RangeResult]:
    """The same, one range after the other in this process, stopping at a hard failure."""
    results = []
    for lo, hi in ranges:
        results.append(check_range(conn_for(), lo, hi, key, legacy, anchors))
        if results[-1].stop is not None:
            break
    return results
