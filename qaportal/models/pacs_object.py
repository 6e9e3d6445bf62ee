"""Which archive instance each image-store key stands for (the DICOMweb image store)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from qaportal.models.base import Base, utcnow


class PacsObject(Base):
    """One key of the DICOMweb image store and the UIDs its instance is filed under.

    Written in a transaction of its own once the archive acknowledged the file
    (qaportal/studies/pacs_index.py), like a file written to disk: a rolled-back upload
    leaves a key no Instance row names, an orphan `qaportal verify-storage` reports. The
    SHA-256 and size are the file's as sent.
    """

    __tablename__ = "pacs_objects"

    key: Mapped[str] = mapped_column(sa.String(80), primary_key=True)
    study_uid: Mapped[str] = mapped_column(sa.String(64))
    series_uid: Mapped[str] = mapped_column(sa.String(64))
    sop_uid: Mapped[str] = mapped_column(sa.String(64), index=True)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    stored_at: Mapped[datetime] = mapped_column(default=utcnow)
