"""Exported PDF reports: what was made, by whom, and the fingerprint that proves it."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qaportal.models.base import Base, enum_check, utcnow

if TYPE_CHECKING:
    from qaportal.models.user import User

# Kinds of report the portal can export; each has a ReportDefinition in qaportal.reports.
REPORT_KINDS = ("oppe", "fppe", "case", "department", "audit", "credentials", "committee")


class ReportExport(Base):
    """One PDF made by the portal; the file is kept and its SHA-256 identifies it."""

    __tablename__ = "report_exports"
    __table_args__ = (
        enum_check("kind", REPORT_KINDS),
        sa.CheckConstraint("size_bytes > 0", name="size_positive"),
        sa.CheckConstraint("page_count > 0", name="pages_positive"),
        sa.CheckConstraint("length(sha256) = 64", name="sha256_length"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # "QAP-" + 16 base32 characters (80 random bits), printed in the PDF and its metadata.
    document_id: Mapped[str] = mapped_column(sa.String(20), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(20), index=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    # The report's parameters as entered (dates, staff e-mails, internal ids); never
    # patient identifiers.
    parameters: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"), index=True)
    created_by_label: Mapped[str] = mapped_column(sa.String(254))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    page_count: Mapped[int]
    storage_key: Mapped[str] = mapped_column(sa.String(200), unique=True)

    created_by: Mapped[User | None] = relationship()

    def __repr__(self) -> str:
        return f"<ReportExport {self.document_id}>"
