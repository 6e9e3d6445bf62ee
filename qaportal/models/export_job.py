"""Long exports made by the job queue: what was asked, how far it is, where the result is."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qaportal.models.base import Base, enum_check, utcnow

if TYPE_CHECKING:
    from qaportal.models.report import ReportExport
    from qaportal.models.user import User

EXPORT_JOB_KINDS = ("audit_csv", "report")
EXPORT_JOB_STATUSES = ("queued", "running", "done", "failed")


class ExportJob(Base):
    """One export asked for in the browser and made by `qaportal worker`.

    An audit CSV is kept as a file under EXPORT_ROOT/jobs/ (sha256 recorded); a PDF report
    becomes a ReportExport like any other (report_export_id). Parameters hold filters,
    dates and staff e-mails only, never patient data.
    """

    __tablename__ = "export_jobs"
    __table_args__ = (
        enum_check("kind", EXPORT_JOB_KINDS),
        enum_check("status", EXPORT_JOB_STATUSES),
        sa.CheckConstraint("progress >= 0 AND progress <= 100", name="progress_percent"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(20))
    report_kind: Mapped[str | None] = mapped_column(sa.String(20))  # for kind "report"
    parameters: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    requested_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(sa.String(10), default="queued", index=True)
    progress: Mapped[int] = mapped_column(default=0)
    rows_done: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    rows_total: Mapped[int | None] = mapped_column(sa.BigInteger)
    message: Mapped[str | None] = mapped_column(sa.String(500))
    storage_key: Mapped[str | None] = mapped_column(sa.String(200), unique=True)
    sha256: Mapped[str | None] = mapped_column(sa.String(64))
    size_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    report_export_id: Mapped[int | None] = mapped_column(sa.ForeignKey("report_exports.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    requested_by: Mapped[User] = relationship()
    report_export: Mapped[ReportExport | None] = relationship()

    def __repr__(self) -> str:
        return f"<ExportJob {self.id} {self.kind} {self.status}>"
