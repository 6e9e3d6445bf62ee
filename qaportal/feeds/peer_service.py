"""Changes to the known DICOM peers: each function checks, changes, audits and flushes; the
caller commits (one transaction per action). Used by the command line and the admin pages.
"""

from __future__ import annotations

import base64

import sqlalchemy as sa

from qaportal import audit
from qaportal.extensions import db
from qaportal.feeds.peer_checks import PeerError, PeerSpec, parse_stow_credentials
from qaportal.feeds.secrets import SecretError, seal, unseal
from qaportal.models import DicomPeer, User


def peer_by_ae(ae_title: str) -> DicomPeer | None:
    """Return the peer with this AE title (spaces around it ignored), or None."""
    return db.session.scalar(sa.select(DicomPeer).where(DicomPeer.ae_title
                                                        == (ae_title or "").strip(" ")))


def _ae_taken(ae_title: str, exclude_id: int | None = None) -> DicomPeer | None:
    """Return a peer whose AE title differs from ae_title at most in letter case."""
    stmt = sa.select(DicomPeer).where(sa.func.upper(DicomPeer.ae_title) == ae_title.upper())
    if exclude_id is not None:
        stmt = stmt.where(DicomPeer.id != exclude_id)
    return db.session.scalar(stmt)


def destination_label(peer: DicomPeer) -> str:
    """Where signed results go, in one line (never the credentials)."""
    if peer.send_kind == "dicom":
        host = f"[{peer.send_host}]" if ":" in peer.send_host else peer.send_host
        return f"C-STORE {host}:{peer.send_port}:{peer.send_ae}"
    if peer.send_kind == "stow":
        return f"STOW-RS {peer.stow_url}" + (" (credentials set)" if peer.stow_credentials
                                             else "")
    return "none"


def _state(peer: DicomPeer) -> dict:
    return {"ae_title": peer.ae_title, "addresses": list(peer.addresses or []),
            "owner_id": peer.owner_id, "description": peer.description,
            "send_kind": peer.send_kind, "send_host": peer.send_host,
            "send_port": peer.send_port, "send_ae": peer.send_ae, "stow_url": peer.stow_url}


def _apply(peer: DicomPeer, spec: PeerSpec) -> None:
    peer.ae_title = spec.ae_title
    peer.addresses = list(spec.addresses)
    peer.owner = spec.owner
    peer.owner_id = spec.owner.id
    peer.description = spec.description
    peer.send_kind = spec.send_kind
    peer.send_host = spec.send_host if spec.send_kind == "dicom" else ""
    peer.send_port = spec.send_port if spec.send_kind == "dicom" else None
    peer.send_ae = spec.send_ae if spec.send_kind == "dicom" else ""
    peer.stow_url = spec.stow_url if spec.send_kind == "stow" else ""


def _credentials_change(peer: DicomPeer, spec: PeerSpec, credentials: str | None,
                        clear: bool) -> str | None:
    """Seal new credentials into the peer; return what changed ("set", "removed") or None."""
    if credentials is not None and credentials.strip():
        if spec.send_kind != "stow":
            raise PeerError("credentials are only for a STOW-RS destination",
                            "stow_credentials")
        try:
            text = parse_stow_credentials(credentials)
        except PeerError as exc:
            raise PeerError(str(exc), "stow_credentials") from None
        peer.stow_credentials = seal(text)
        return "set"
    if (clear or spec.send_kind != "stow") and peer.stow_credentials:
        peer.stow_credentials = None
        return "removed"
    return None


def create_peer(spec: PeerSpec, *, credentials: str | None = None, by: User | None,
                actor_label: str | None = None) -> DicomPeer:
    """Add a known peer; refuse an AE title already known (in any letter case)."""
    taken = _ae_taken(spec.ae_title)
    if taken is not None:
        raise PeerError(f"a peer with the AE title {taken.ae_title!r} exists already "
                        "(change it instead)", "ae_title")
    peer = DicomPeer(active=True, created_by_id=by.id if by else None, addresses=[])
    _apply(peer, spec)
    creds = _credentials_change(peer, spec, credentials, clear=False)
    db.session.add(peer)
    db.session.flush()
    audit.record("peer.created", peer, actor=by, actor_label=actor_label,
                 **_state(peer), stow_credentials=creds or "none")
    return peer


def update_peer(peer: DicomPeer, spec: PeerSpec, *, credentials: str | None = None,
                clear_credentials: bool = False, by: User | None,
                actor_label: str | None = None) -> dict:
    """Change a peer's settings; an empty credentials value keeps the stored ones (unless
    cleared or the destination is no longer STOW-RS). Return the changes audited."""
    taken = _ae_taken(spec.ae_title, exclude_id=peer.id)
    if taken is not None:
        raise PeerError(f"another peer has the AE title {taken.ae_title!r}", "ae_title")
    before = _state(peer)
    _apply(peer, spec)
    creds = _credentials_change(peer, spec, credentials, clear_credentials)
    after = _state(peer)
    changes = {k: [before[k], after[k]] for k in before if before[k] != after[k]}
    if creds:
        changes["stow_credentials"] = creds
    if changes:
        db.session.flush()
        audit.record("peer.updated", peer, actor=by, actor_label=actor_label, changes=changes)
    return changes


def set_peer_active(peer: DicomPeer, active: bool, *, by: User | None,
                    actor_label: str | None = None) -> bool:
    """Enable or disable a peer; return False when it was so already (nothing audited)."""
    if peer.active == active:
        return False
    peer.active = active
    db.session.flush()
    audit.record("peer.enabled" if active else "peer.disabled", peer, actor=by,
                 actor_label=actor_label, ae_title=peer.ae_title)
    return True


def stow_authorization(peer: DicomPeer) -> str | None:
    """Return the HTTP Authorization header value for the peer's STOW-RS destination, or
    None without credentials. SecretError when they cannot be decrypted."""
    if not peer.stow_credentials:
        return None
    text = unseal(peer.stow_credentials)
    if text[:7].lower() == "bearer ":
        return "Bearer " + text[7:].strip()
    return "Basic " + base64.b64encode(text.encode("utf-8")).decode("ascii")


__all__ = ["PeerError", "SecretError", "create_peer", "destination_label", "peer_by_ae",
           "set_peer_active", "stow_authorization", "update_peer"]
