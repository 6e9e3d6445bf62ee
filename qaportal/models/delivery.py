"""Deliveries: one signed result object (opinion or addendum) on its way to one peer."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qaportal.models.base import Base, enum_check, utcnow

if TYPE_CHECKING:
    from qaportal.models.feeds import DicomPeer
    from qaportal.models.opinion import OpinionAddendum, OpinionRequest

# queued: waiting for its next attempt (due at next_attempt_at); sending: claimed by one
# worker (next_attempt_at is then the end of its lease); sent and failed are final until a
# manual resend queues it again.
DELIVERY_STATUSES = ("queued", "sending", "sent", "failed")


class Delivery(Base):
    """The outbox row of one signed object for one destination peer.

    Created in the transaction that signs the opinion or the addendum, so a signature
    never exists without its deliveries nor a delivery without its signature.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        enum_check("status", DELIVERY_STATUSES),
        sa.Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(sa.ForeignKey("opinion_requests.id"), index=True)
    # None: the signed opinion itself; otherwise the signed addendum.
    addendum_id: Mapped[int | None] = mapped_column(sa.ForeignKey("opinion_addenda.id"))
    peer_id: Mapped[int] = mapped_column(sa.ForeignKey("dicom_peers.id"), index=True)
    status: Mapped[str] = mapped_column(sa.String(8), default="queued")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    # The last failed attempt: what went wrong, and the status the peer answered (a DIMSE
    # status such as "0xA700", an HTTP status) when it answered at all.
    last_error: Mapped[str] = mapped_column(sa.String(500), default="")
    peer_status: Mapped[str] = mapped_column(sa.String(64), default="")
    last_attempt_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    sop_instance_uids: Mapped[list] = mapped_column(sa.JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    request: Mapped[OpinionRequest] = relationship()
    addendum: Mapped[OpinionAddendum | None] = relationship()
    peer: Mapped[DicomPeer] = relationship()

    @property
    def object_label(self) -> str:
        return "opinion" if self.addendum_id is None else f"addendum {self.addendum_id}"

    def __repr__(self) -> str:
        return f"<Delivery {self.id} {self.status}>"
