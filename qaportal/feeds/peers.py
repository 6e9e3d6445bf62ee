"""Known DICOM peers: which calling AE title, from which address, may send to the portal."""

from __future__ import annotations

import ipaddress

import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import DicomPeer


def address_allowed(address: str, allowed: list[str]) -> bool:
    """Return True when address is one of allowed (addresses or networks, IPv4 or IPv6)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for entry in allowed:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except (ValueError, TypeError):
            continue
    return False


def find_peer(ae_title: str, address: str) -> DicomPeer | None:
    """Return the active peer with this calling AE title that may connect from address.

    None for an unknown AE title, an inactive peer, an address not listed, or a peer whose
    owning account is deactivated.
    """
    title = (ae_title or "").strip()
    if not title:
        return None
    peer = db.session.scalar(sa.select(DicomPeer).where(DicomPeer.ae_title == title))
    if peer is None or not peer.active or not peer.owner.active:
        return None
    return peer if address_allowed(address, peer.addresses or []) else None
