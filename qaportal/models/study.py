"""Imaging studies as stored in the portal: study, series, instance, the original read."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qaportal.models.base import Base, enum_check, utcnow

if TYPE_CHECKING:
    from qaportal.models.read_version import OriginalReadVersion
    from qaportal.models.user import User


class Study(Base):
    """A DICOM study (StudyInstanceUID) with the clinical context its uploader gave.

    Study identity is scoped to the owner: the same StudyInstanceUID uploaded by two users
    is two studies, each with its own series and instances (docs/studies.md).
    """

    __tablename__ = "studies"
    __table_args__ = (sa.UniqueConstraint("owner_id", "study_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_uid: Mapped[str] = mapped_column(sa.String(64))
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    # DICOM header fields kept for search and display (patient data: never in URLs or logs).
    patient_name: Mapped[str] = mapped_column(sa.String(200), default="")
    patient_id: Mapped[str] = mapped_column(sa.String(64), default="")
    patient_sex: Mapped[str] = mapped_column(sa.String(16), default="")
    patient_birth_date: Mapped[date | None]
    accession_number: Mapped[str] = mapped_column(sa.String(64), default="")
    study_date: Mapped[date | None]
    study_time: Mapped[time | None]
    study_description: Mapped[str] = mapped_column(sa.String(200), default="")
    modalities: Mapped[str] = mapped_column(sa.String(64), default="")  # "CT/PT"
    body_part: Mapped[str] = mapped_column(sa.String(64), default="")
    institution: Mapped[str] = mapped_column(sa.String(200), default="")
    referring_physician: Mapped[str] = mapped_column(sa.String(200), default="")
    # Clinical context entered by the radiologist.
    jurisdiction: Mapped[str | None] = mapped_column(sa.String(10))
    clinical_history: Mapped[str] = mapped_column(sa.Text, default="")
    clinical_question: Mapped[str] = mapped_column(sa.Text, default="")
    # Counters kept by ingest.
    series_count: Mapped[int] = mapped_column(default=0)
    instance_count: Mapped[int] = mapped_column(default=0)
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    burned_in_suspected: Mapped[bool] = mapped_column(default=False)
    # De-identification: a per-study key makes UID replacement consistent and linkable.
    deid_key: Mapped[str] = mapped_column(sa.String(64))
    deid_date_shift_days: Mapped[int] = mapped_column(default=0)
    pseudonym: Mapped[str] = mapped_column(sa.String(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    owner: Mapped[User] = relationship(foreign_keys=[owner_id])
    series: Mapped[list[Series]] = relationship(
        back_populates="study", cascade="all, delete-orphan",
        order_by="(Series.series_number, Series.id)",
    )
    read: Mapped[OriginalRead | None] = relationship(
        back_populates="study", cascade="all, delete-orphan", uselist=False
    )
    access: Mapped[list[StudyAccess]] = relationship(
        back_populates="study", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"<Study {self.id}>"


# The study list's default order, newest upload first: a page is read off the index's head
# instead of sorting every visible study.
sa.Index("ix_studies_created_at_id", Study.created_at.desc(), Study.id.desc())
# A radiologist's latest studies (the home page's panel), however few they upload (0027).
sa.Index("ix_studies_owner_created_at_id", Study.owner_id, Study.created_at.desc(),
         Study.id.desc())


class Series(Base):
    """A DICOM series (SeriesInstanceUID) within a study (unique within that study)."""

    __tablename__ = "series"
    __table_args__ = (sa.UniqueConstraint("study_id", "series_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("studies.id"), index=True)
    series_uid: Mapped[str] = mapped_column(sa.String(64))
    modality: Mapped[str] = mapped_column(sa.String(16), default="")
    series_number: Mapped[int | None]
    series_description: Mapped[str] = mapped_column(sa.String(200), default="")
    body_part: Mapped[str] = mapped_column(sa.String(64), default="")
    instance_count: Mapped[int] = mapped_column(default=0)
    frame_count: Mapped[int] = mapped_column(default=0)

    study: Mapped[Study] = relationship(back_populates="series")
    instances: Mapped[list[Instance]] = relationship(
        back_populates="series", cascade="all, delete-orphan"
    )


class Instance(Base):
    """One stored DICOM file (SOPInstanceUID), keyed in the image store by an internal key.

    The SOP Instance UID is unique within a series here; ingest also keeps it unique
    within one owner's studies (duplicates and conflicts are found in that scope only).
    """

    __tablename__ = "instances"
    __table_args__ = (sa.UniqueConstraint("series_id", "sop_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(sa.ForeignKey("series.id"), index=True)
    sop_uid: Mapped[str] = mapped_column(sa.String(64), index=True)
    sop_class_uid: Mapped[str] = mapped_column(sa.String(64), default="")
    instance_number: Mapped[int | None]
    # Position along the slice normal, for anatomical ordering (None when not given).
    slice_position: Mapped[float | None]
    rows: Mapped[int | None]
    columns: Mapped[int | None]
    frames: Mapped[int] = mapped_column(default=1)
    transfer_syntax_uid: Mapped[str] = mapped_column(sa.String(64), default="")
    photometric_interpretation: Mapped[str] = mapped_column(sa.String(32), default="")
    burned_in_annotation: Mapped[bool | None]
    window_center: Mapped[float | None]
    window_width: Mapped[float | None]
    storage_key: Mapped[str] = mapped_column(sa.String(80), unique=True)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    series: Mapped[Series] = relationship(back_populates="instances")


class OriginalRead(Base):
    """The study's original report: who read it, when it was finalized, its text."""

    __tablename__ = "original_reads"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("studies.id"), unique=True)
    reader_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    report_text: Mapped[str] = mapped_column(sa.Text)
    finalized_at: Mapped[datetime | None] = mapped_column(index=True)
    entered_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    study: Mapped[Study] = relationship(back_populates="read")
    reader: Mapped[User] = relationship(foreign_keys=[reader_id])
    entered_by: Mapped[User] = relationship(foreign_keys=[entered_by_id])
    # Versions a correction superseded, oldest first (the current one is this row).
    versions: Mapped[list[OriginalReadVersion]] = relationship(
        back_populates="read", order_by="OriginalReadVersion.version"
    )

    @property
    def is_final(self) -> bool:
        return self.finalized_at is not None


ACCESS_MODES = ("full", "deidentified")


class StudyAccess(Base):
    """Access to a study granted by a workflow (second opinion, review, share)."""

    __tablename__ = "study_access"
    __table_args__ = (
        sa.UniqueConstraint("study_id", "user_id", "source_type", "source_id"),
        enum_check("mode", ACCESS_MODES),
        # A workflow object's grants (the review-access sweep, qaportal/reviews/access.py).
        sa.Index("ix_study_access_source", "source_type", "source_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("studies.id"), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    mode: Mapped[str] = mapped_column(sa.String(16), default="full")
    # What granted it, e.g. ("opinion_request", 12) or ("review_assignment", 40).
    source_type: Mapped[str] = mapped_column(sa.String(40))
    source_id: Mapped[int]
    granted_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]

    study: Mapped[Study] = relationship(back_populates="access")
    user: Mapped[User] = relationship(foreign_keys=[user_id])


class UploadBatch(Base):
    """One upload or import: what was stored, duplicated, in conflict or rejected."""

    __tablename__ = "upload_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    source: Mapped[str] = mapped_column(sa.String(16), default="browser")  # browser / cli
    stored: Mapped[int] = mapped_column(default=0)
    duplicates: Mapped[int] = mapped_column(default=0)
    conflicts: Mapped[int] = mapped_column(default=0)
    bytes_stored: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    # [{"file": name, "error": reason}]; file names as the user gave them, never server paths.
    errors: Mapped[list] = mapped_column(sa.JSON, default=list)
    study_ids: Mapped[list] = mapped_column(sa.JSON, default=list)
    # The context typed once on the upload page when the upload held several studies: kept
    # (applied to none) to prefill each study's own form on the summary.
    pending_context: Mapped[dict | None] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
