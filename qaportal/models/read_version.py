"""Superseded versions of an original read, kept when a QA manager corrects a final read."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from qaportal.models.base import Base, utcnow

if TYPE_CHECKING:
    from qaportal.models.study import OriginalRead
    from qaportal.models.user import User


class ImmutableReadVersionError(RuntimeError):
    """A kept version of an original read was about to be changed or deleted."""


class OriginalReadVersion(Base):
    """The read as it stood before a correction: who read it, its text, and why it changed."""

    __tablename__ = "original_read_versions"
    __table_args__ = (
        sa.UniqueConstraint("read_id", "version"),
        sa.CheckConstraint("reason <> ''", name="reason_given"),
        sa.CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    read_id: Mapped[int] = mapped_column(sa.ForeignKey("original_reads.id"), index=True)
    version: Mapped[int]  # 1 = the read as first entered
    reader_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    report_text: Mapped[str] = mapped_column(sa.Text)
    finalized_at: Mapped[datetime | None]
    entered_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    # The correction that replaced this version.
    superseded_at: Mapped[datetime] = mapped_column(default=utcnow)
    superseded_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(sa.Text)

    read: Mapped[OriginalRead] = relationship(back_populates="versions")
    reader: Mapped[User] = relationship(foreign_keys=[reader_id])
    superseded_by: Mapped[User] = relationship(foreign_keys=[superseded_by_id])


@sa.event.listens_for(Session, "before_flush")
def _versions_are_immutable(session: Session, flush_context, instances) -> None:
    for obj in session.dirty:
        if isinstance(obj, OriginalReadVersion) and session.is_modified(
                obj, include_collections=False):
            raise ImmutableReadVersionError(f"read version {obj.id} cannot be changed")
    for obj in session.deleted:
        if isinstance(obj, OriginalReadVersion):
            raise ImmutableReadVersionError(f"read version {obj.id} cannot be deleted")


# Kept versions are evidence of what reviews were scored on: raw SQL cannot edit or delete
# them either (the ORM guard above gives the clear error first).
IMMUTABLE_TRIGGERS = {
    "sqlite": [
        f"CREATE TRIGGER original_read_versions_no_{op.lower()} BEFORE {op} "
        "ON original_read_versions "
        "BEGIN SELECT RAISE(ABORT, 'original_read_versions rows are immutable'); END"
        for op in ("UPDATE", "DELETE")
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION original_read_versions_immutable() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION 'original_read_versions rows are immutable'; END $$",
        "CREATE TRIGGER original_read_versions_immutable BEFORE UPDATE OR DELETE "
        "ON original_read_versions FOR EACH ROW "
        "EXECUTE FUNCTION original_read_versions_immutable()",
    ],
}
DROP_IMMUTABLE_TRIGGERS = {
    "sqlite": [f"DROP TRIGGER IF EXISTS original_read_versions_no_{op}"
               for op in ("update", "delete")],
    "postgresql": [
        "DROP TRIGGER IF EXISTS original_read_versions_immutable ON original_read_versions",
        "DROP FUNCTION IF EXISTS original_read_versions_immutable()",
    ],
}


@sa.event.listens_for(OriginalReadVersion.__table__, "after_create")
def _add_immutable_triggers(target, connection, **kw) -> None:
    for stmt in IMMUTABLE_TRIGGERS.get(connection.dialect.name, []):
        connection.exec_driver_sql(stmt)
