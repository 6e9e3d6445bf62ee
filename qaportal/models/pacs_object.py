"""Which archive instance each image-store key stands for (the DICOMweb image store)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from qaportal.models.base import Base, utcnow


class PacsObject(Base):
    """One key of the DICOMweb image store and the UIDs its instance is filed under.

    Written in the transaction of the rows that name the key (an Instance's storage_key),
    so a rolled-back upload leaves no mapping; its instance in the archive is then an
    orphan `qaportal studies verify-storage` reports. The SHA-256 and size are the file's
    as sent, so the check on read does not depend on any other table.
    """

    __tablename__ = "pacs_objects"

    key: Mapped[str] = mapped_column(sa.String(80), primary_key=True)
    study_uid: Mapped[str] = mapped_column(sa.String(64))
    series_uid: Mapped[str] = mapped_column(sa.String(64))
    sop_uid: Mapped[str] = mapped_column(sa.String(64), index=True)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    stored_at: Mapped[datetime] = mapped_column(default=utcnow)
