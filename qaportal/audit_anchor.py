"""Anchor the audit chain outside the database: entry MACs and signed checkpoints.

A database administrator can drop the triggers, delete an entry and recompute every later
hash and the head; the chain alone then looks intact. Two things they cannot forge:

- each entry's MAC (HMAC-SHA256 of its hash under the audit key, which lives in the
  instance folder or the environment and never in the database);
- checkpoints of the head (seq, hash, time, MAC) appended to a file the database account
  cannot rewrite (`AUDIT_ANCHOR_FILE`, opened O_APPEND and fsynced) and sent to syslog.

Checkpoints are written after the transaction that made the entry commits (a rolled-back
entry's seq is reused, so anchoring it would raise a false alarm later).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import logging.handlers
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)
SYSLOG_SOCKET = "/dev/log"
_PENDING = "qaportal_audit_checkpoint"  # key in Session.info
_syslog: logging.Logger | None = None


def entry_mac(key: str, entry_hash: str) -> str:
    """Return the HMAC-SHA256 of an entry's hash under the audit key."""
    return hmac.new(key.encode(), entry_hash.encode("ascii"), hashlib.sha256).hexdigest()


def mac_ok(key: str, entry_hash: str, mac: str) -> bool:
    """Return whether mac is the entry hash's MAC under key (constant-time compare)."""
    return hmac.compare_digest(mac, entry_mac(key, entry_hash))


def _line_mac(key: str, fields: dict) -> str:
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hmac.new(key.encode(), b"checkpoint:" + text.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    """One signed sighting of the chain's head."""

    seq: int
    entry_hash: str
    at: str
    legacy: int  # entries 1..legacy were written before anchoring began (no MAC)
    line: int = 0  # line number in the anchor file (1-based)
    # True when `audit-verify` wrote it after checking every entry up to it: an
    # incremental run may start there. A checkpoint written beside an entry is a sighting.
    verified: bool = False

    def fields(self) -> dict:
        """Return what the line's MAC covers (lines without "verified" predate the flag)."""
        fields = {"at": self.at, "hash": self.entry_hash, "legacy": self.legacy,
                  "seq": self.seq, "v": 1}
        if self.verified:
            fields["verified"] = True
        return fields


def checkpoint_line(key: str, cp: Checkpoint) -> str:
    """Return the checkpoint as one JSON line carrying its MAC."""
    fields = cp.fields()
    return json.dumps({**fields, "mac": _line_mac(key, fields)}, sort_keys=True) + "\n"


class AnchorError(ValueError):
    """A line of the anchor file is not a checkpoint signed with this key."""

    def __init__(self, line: int, reason: str):
        super().__init__(f"anchor file line {line}: {reason}")
        self.line = line


def read_checkpoints(path: str | os.PathLike, key: str) -> list[Checkpoint]:
    """Return every checkpoint in the anchor file (none when it does not exist yet)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    result = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
            cp = Checkpoint(int(data["seq"]), str(data["hash"]), str(data["at"]),
                            int(data["legacy"]), number, data.get("verified") is True)
            mac = str(data["mac"])
        except (ValueError, KeyError, TypeError) as exc:
            raise AnchorError(number, "not a checkpoint") from exc
        if not hmac.compare_digest(mac, _line_mac(key, cp.fields())):
            raise AnchorError(number, "not signed with this server's audit key")
        result.append(cp)
    return result


def append_checkpoint(path: str | os.PathLike, key: str, cp: Checkpoint,
                      syslog: bool = True) -> None:
    """Append a checkpoint to the anchor file (one write, fsync) and send it to syslog."""
    line = checkpoint_line(key, cp)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # One write() of a short line on an O_APPEND descriptor: lines from several workers
    # never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    if syslog:
        _to_syslog(line.strip())


def _to_syslog(line: str) -> None:
    """Send a checkpoint to the local syslog; a machine without /dev/log is no error."""
    global _syslog
    if _syslog is None:
        logger = logging.getLogger("qaportal.audit.checkpoint")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        if os.path.exists(SYSLOG_SOCKET):
            try:
                handler = logging.handlers.SysLogHandler(
                    address=SYSLOG_SOCKET, facility=logging.handlers.SysLogHandler.LOG_AUTHPRIV)
                handler.ident = "qaportal-audit: "
                logger.addHandler(handler)
            except OSError:
                log.warning("syslog socket %s cannot be opened", SYSLOG_SOCKET)
        _syslog = logger
    try:
        _syslog.info("checkpoint %s", line)
    except Exception:  # noqa: BLE001 - syslog is a second copy; the file holds the first
        log.warning("audit checkpoint not sent to syslog", exc_info=True)


def now_iso() -> str:
    """Return the current UTC time as the checkpoint's timestamp."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def legacy_count(session: Session, app: Flask, upto: int | None = None) -> int:
    """Return how many leading entries predate anchoring (carry no MAC); cached per app.

    upto: the seq of the entry being written, when there is one (it is not flushed yet).
    """
    cached = app.extensions.get("qaportal_audit_legacy")
    if cached is not None:
        return cached
    from qaportal.models import AuditEvent, AuditHead

    first = session.scalar(sa.select(sa.func.min(AuditEvent.seq))
                           .where(AuditEvent.entry_mac.is_not(None)))
    if first is None and upto is not None:
        return upto - 1  # not cached: the entry being written may still roll back
    if first is None:  # nothing signed yet: every entry so far is older than anchoring
        first = (session.scalar(sa.select(AuditHead.seq).where(AuditHead.id == 1)) or 0) + 1
    app.extensions["qaportal_audit_legacy"] = first - 1
    return first - 1


def schedule(session: Session, seq: int, entry_hash: str) -> None:
    """Ask for a checkpoint of this entry once its transaction commits, when one is due."""
    app = current_app._get_current_object()
    cfg = app.config
    path = cfg["AUDIT_ANCHOR_FILE"]
    if seq % int(cfg["AUDIT_CHECKPOINT_EVERY"]) and os.path.exists(path):
        return
    # The first entry written without an anchor file starts it: from then on the file
    # says how many old entries may lack a MAC.
    legacy = legacy_count(session, app, upto=seq)
    session.info[_PENDING] = (app, Checkpoint(seq, entry_hash, now_iso(), legacy))


def write_for(app: Flask, cp: Checkpoint) -> None:
    """Write a checkpoint with the app's settings; report but never raise a failure."""
    cfg = app.config
    try:
        append_checkpoint(cfg["AUDIT_ANCHOR_FILE"], cfg["AUDIT_KEY"], cp, cfg["AUDIT_SYSLOG"])
    except OSError:
        app.logger.exception("audit checkpoint of entry %s not written", cp.seq)


@sa.event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if pending is not None:
        write_for(*pending)


@sa.event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
