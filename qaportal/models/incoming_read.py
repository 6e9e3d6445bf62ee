"""Reads and orders received from a hospital's RIS (HL7 v2) or reporting system (FHIR R4).

Every accepted message is kept here, whatever became of it: a read for a study whose
images have not arrived waits, a read by a radiologist no account is mapped to waits for
an administrator, and both are matched later (qaportal.feeds.reads).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qaportal.models.base import Base, enum_check, utcnow

if TYPE_CHECKING:
    from qaportal.models.study import Study
    from qaportal.models.user import User

READ_SOURCES = ("hl7", "fhir")
# report: a result (ORU^R01, DiagnosticReport); order: a pre-registered order (ORM, OMI).
READ_KINDS = ("report", "order")
READ_STATUSES = (
    "waiting_images",   # no study of the owner with this accession / StudyInstanceUID yet
    "waiting_reader",   # no account carries the reader's identifier yet
    "matched",          # recorded as (or confirmed) the study's original read
    "superseded",       # a later message for the same study replaced it before it matched
    "preliminary",      # kept, never recorded: only final and corrected reads count
    "ordered",          # an order waiting for its images
    "refused",          # the study's rules refused it (error says why)
)
WAITING = ("waiting_images", "waiting_reader")


class IncomingRead(Base):
    """One received report or order message and what became of it."""

    __tablename__ = "incoming_reads"
    __table_args__ = (
        enum_check("source", READ_SOURCES),
        enum_check("kind", READ_KINDS),
        enum_check("status", READ_STATUSES),
        sa.UniqueConstraint("owner_id", "source", "sending_application", "sending_facility",
                            "message_id", name=sa.schema.conv("uq_incoming_reads_message")),
        sa.Index("ix_incoming_reads_owner_status", "owner_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(sa.String(8))
    kind: Mapped[str] = mapped_column(sa.String(8), default="report")
    # MSH-10 for HL7; the resource id or identifier for FHIR (None: no duplicate check).
    message_id: Mapped[str | None] = mapped_column(sa.String(64))
    sending_application: Mapped[str] = mapped_column(sa.String(64), default="")
    sending_facility: Mapped[str] = mapped_column(sa.String(64), default="")
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    peer_id: Mapped[int | None] = mapped_column(sa.ForeignKey("dicom_peers.id"))
    accession_number: Mapped[str] = mapped_column(sa.String(64), default="", index=True)
    study_uid: Mapped[str] = mapped_column(sa.String(64), default="")
    # As sent (patient data: never in URLs or logs).
    patient_id: Mapped[str] = mapped_column(sa.String(64), default="")
    patient_name: Mapped[str] = mapped_column(sa.String(200), default="")
    reader_identifier: Mapped[str] = mapped_column(sa.String(64), default="", index=True)
    reader_name: Mapped[str] = mapped_column(sa.String(200), default="")
    report_text: Mapped[str] = mapped_column(sa.Text, default="")
    # F final, C corrected, P preliminary (HL7 result status; FHIR final/amended/corrected).
    result_status: Mapped[str] = mapped_column(sa.String(1), default="F")
    finalized_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(sa.String(16))
    error: Mapped[str] = mapped_column(sa.String(300), default="")
    study_id: Mapped[int | None] = mapped_column(sa.ForeignKey("studies.id"), index=True)
    reader_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    matched_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    owner: Mapped[User] = relationship(foreign_keys=[owner_id])
    study: Mapped[Study | None] = relationship(foreign_keys=[study_id])
    reader_user: Mapped[User | None] = relationship(foreign_keys=[reader_user_id])

    def __repr__(self) -> str:
        return f"<IncomingRead {self.id}>"
