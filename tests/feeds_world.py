"""Lookups shared by the tests of known peers (command line and admin pages)."""

from __future__ import annotations

import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import AuditEvent, DicomPeer


def peer_by_ae(ae: str) -> DicomPeer | None:
    """Return the peer with this AE title as the database holds it now."""
    db.session.expire_all()
    return db.session.scalar(sa.select(DicomPeer).where(DicomPeer.ae_title == ae))


def audit_actions(prefix: str) -> list[AuditEvent]:
    """Return the audit entries whose action starts with prefix, oldest first."""
    return list(db.session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action.like(prefix + "%")).order_by(AuditEvent.seq)))
