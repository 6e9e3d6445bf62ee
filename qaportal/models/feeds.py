"""Hospital feeds: the DICOM peers (sites) that send studies to the portal and get results back."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qaportal.models.base import Base, enum_check, utcnow

if TYPE_CHECKING:
    from qaportal.models.user import User

# How signed results go back to a peer: not at all, DICOM C-STORE, or DICOMweb STOW-RS.
SEND_KINDS = ("none", "dicom", "stow")


class DicomPeer(Base):
    """A known sending site: its calling AE title, the addresses it may connect from, the
    account that owns what it sends, and where signed results go back to.

    An association from an unknown AE title, an address not listed, or an inactive peer is
    rejected. The STOW-RS credentials are kept encrypted (qaportal.feeds.secrets).
    """

    __tablename__ = "dicom_peers"
    __table_args__ = (enum_check("send_kind", SEND_KINDS),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ae_title: Mapped[str] = mapped_column(sa.String(16), unique=True)
    # Allowed source addresses: IPv4/IPv6 addresses or networks ("10.1.2.3", "10.1.0.0/16").
    addresses: Mapped[list] = mapped_column(sa.JSON, default=list)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    active: Mapped[bool] = mapped_column(default=True)
    description: Mapped[str] = mapped_column(sa.String(200), default="")
    send_kind: Mapped[str] = mapped_column(sa.String(8), default="none")
    # C-STORE destination.
    send_host: Mapped[str] = mapped_column(sa.String(255), default="")
    send_port: Mapped[int | None]
    send_ae: Mapped[str] = mapped_column(sa.String(16), default="")
    # STOW-RS destination: base URL of the DICOMweb service and encrypted credentials.
    stow_url: Mapped[str] = mapped_column(sa.String(500), default="")
    stow_credentials: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    owner: Mapped[User] = relationship(foreign_keys=[owner_id])

    def __repr__(self) -> str:
        return f"<DicomPeer {self.id}>"
