"""The append-only, hash-chained audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from qaportal.models.base import Base


class AuditEvent(Base):
    """One audited action; its hash covers its content and the previous entry's hash."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(sa.BigInteger, unique=True)
    occurred_at: Mapped[datetime] = mapped_column(index=True)
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"), index=True)
    actor_label: Mapped[str] = mapped_column(sa.String(254))
    action: Mapped[str] = mapped_column(sa.String(64), index=True)
    object_type: Mapped[str | None] = mapped_column(sa.String(40))
    object_id: Mapped[str | None] = mapped_column(sa.String(64))
    source_ip: Mapped[str | None] = mapped_column(sa.String(45))
    details: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    entry_hash: Mapped[str] = mapped_column(sa.String(64))
    # HMAC-SHA256 of entry_hash under the instance's audit key (never in the database): a
    # database administrator can recompute hashes but not these. NULL only for entries
    # written before anchoring began (migration 0010).
    entry_mac: Mapped[str | None] = mapped_column(sa.String(64))

    __table_args__ = (
        sa.Index("ix_audit_events_object", "object_type", "object_id"),
        # the actor filter: a label's entries newest first (qaportal/auditlog/query.py)
        sa.Index("ix_audit_events_actor_label_seq", "actor_label", "seq"),
    )


class AuditHead(Base):
    """The single row naming the chain's last entry; updating it serialises writers."""

    __tablename__ = "audit_head"
    __table_args__ = (sa.CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    entry_hash: Mapped[str] = mapped_column(sa.String(64))
    # HMAC of a fixed label under the audit key (qaportal/audit_key.py), never the key: a
    # server with another key refuses to start and to write (NULL until the first start).
    key_fingerprint: Mapped[str | None] = mapped_column(sa.String(64))


# Updates and deletes are refused by the database itself; verify() catches what a
# database superuser does anyway.
APPEND_ONLY_TRIGGERS = {
    "sqlite": [
        "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
        "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
        "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
        "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION 'audit_events is append-only'; END $$",
        "CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()",
    ],
}
DROP_TRIGGERS = {
    "sqlite": [
        "DROP TRIGGER IF EXISTS audit_events_no_update",
        "DROP TRIGGER IF EXISTS audit_events_no_delete",
    ],
    "postgresql": [
        "DROP TRIGGER IF EXISTS audit_events_no_change ON audit_events",
        "DROP FUNCTION IF EXISTS audit_events_append_only()",
    ],
}


@sa.event.listens_for(AuditEvent.__table__, "after_create")
def _add_triggers(target, connection, **kw) -> None:
    for stmt in APPEND_ONLY_TRIGGERS.get(connection.dialect.name, []):
        connection.exec_driver_sql(stmt)
