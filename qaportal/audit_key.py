"""One audit key for every server: its fingerprint in the database, checked at start-up.

Every entry of the audit chain carries an HMAC under the audit key (qaportal/audit_anchor.py)
and `qaportal audit-verify` checks them all under one key. A server started with another
key would write entries the verifier rejects. So the audit head keeps the key's
fingerprint, an HMAC of a fixed label under the key (the key cannot be recovered from it),
recorded by the first server or worker that starts (or the first entry written) after
migration 0022, and:

- the portal (`create_app`, when `AUDIT_KEY_CHECK`) and `qaportal worker` refuse to start
  under another key, naming QAPORTAL_AUDIT_KEY and never printing a key;
- `audit.record` compares it in the statement that takes the next seq, so not even a
  process that skipped the start-up check (a CLI command, a database down at start)
  writes an entry under another key.

There is no key rotation: the chain is verified under one key. See docs/deployment.md.
"""

from __future__ import annotations

import hashlib
import hmac

import sqlalchemy as sa
from flask import Flask

from qaportal.config import ConfigError

_LABEL = b"qaportal audit key fingerprint v1"
SETTING = "QAPORTAL_AUDIT_KEY"


class AuditKeyMismatch(ConfigError):
    """This server's audit key is not the key the database's chain is signed with."""

    def __init__(self) -> None:
        super().__init__(
            f"{SETTING} differs from the audit key this database's audit chain was written "
            f"with (the fingerprints recorded in audit_head do not match). Every app server "
            f"and worker must use the same {SETTING} (docs/deployment.md, section 7); this "
            f"one refuses to start rather than write entries the verifier would reject.")


def fingerprint(key: str) -> str:
    """Return the key's fingerprint: HMAC-SHA256 of a fixed label under the key."""
    return hmac.new(key.encode(), _LABEL, hashlib.sha256).hexdigest()


def app_fingerprint(app: Flask) -> str:
    """The fingerprint of the app's AUDIT_KEY (computed once per app)."""
    cached = app.extensions.get("qaportal_audit_key_fingerprint")
    if cached is None:
        cached = app.extensions["qaportal_audit_key_fingerprint"] = fingerprint(
            app.config["AUDIT_KEY"])
    return cached


def matches(app: Flask, recorded: str | None) -> bool:
    """Whether a recorded fingerprint is this app's (None: nothing recorded yet)."""
    return recorded is None or hmac.compare_digest(recorded, app_fingerprint(app))


def check(app: Flask) -> str:
    """Record this app's key fingerprint when the database has none, or compare it.

    Returns "recorded", "matches" or "unchecked" (the database is not migrated to 0022
    yet: `qaportal db upgrade` must still run); raises AuditKeyMismatch.
    """
    from qaportal.extensions import db
    from qaportal.models import AuditHead

    mine = app_fingerprint(app)
    with app.app_context(), db.engine.begin() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("audit_head")} \
            if sa.inspect(conn).has_table("audit_head") else set()
        if "key_fingerprint" not in columns:
            return "unchecked"
        head = AuditHead.__table__
        # Only a head without a fingerprint takes ours: of two servers starting at once with
        # different keys, the second reads the first one's and refuses.
        recorded = conn.execute(
            head.update().where(head.c.id == 1, head.c.key_fingerprint.is_(None))
            .values(key_fingerprint=mine)).rowcount
        stored = conn.execute(sa.select(head.c.key_fingerprint)
                              .where(head.c.id == 1)).scalar_one_or_none()
    if stored is not None and not hmac.compare_digest(stored, mine):
        raise AuditKeyMismatch()
    return "recorded" if recorded else "matches"


def check_at_start(app: Flask) -> None:
    """The start-up check of `create_app`: refuse a mismatched key; a database that cannot
    be reached now is left to the check in audit.record (logged)."""
    try:
        check(app)
    except AuditKeyMismatch:
        raise
    except sa.exc.OperationalError:
        app.logger.warning("audit key not checked at start: the database cannot be reached; "
                           "each audit entry is checked as it is written")
