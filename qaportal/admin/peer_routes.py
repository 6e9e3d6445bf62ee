"""Admin pages of the known DICOM peers: list, add, change, disable and enable."""

from __future__ import annotations

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.exc import IntegrityError

from qaportal.admin import bp
from qaportal.admin.peer_forms import PeerForm
from qaportal.auth.forms import EmptyForm
from qaportal.extensions import db
from qaportal.feeds.peer_checks import PeerError, check_peer
from qaportal.feeds.peer_service import (
    create_peer,
    destination_label,
    set_peer_active,
    update_peer,
)
from qaportal.feeds.secrets import SecretError
from qaportal.models import DicomPeer
from qaportal.permissions import role_required


def _peer_or_404(peer_id: int) -> DicomPeer:
    peer = db.session.get(DicomPeer, peer_id)
    if peer is None:
        abort(404)
    return peer


@bp.route("/peers")
@role_required("admin")
def peers():
    """Every known peer, active or not."""
    rows = db.session.scalars(sa.select(DicomPeer).order_by(DicomPeer.ae_title)).all()
    return render_template("admin/peers.html", peers=rows, destination=destination_label,
                           action_form=EmptyForm())


def _save(form: PeerForm, peer: DicomPeer | None):
    """Check and save the form; return the peer, or None with the errors on the form."""
    spec, errors = check_peer(
        ae_title=form.ae_title.data, addresses=[form.addresses.data or ""],
        owner_email=form.owner.data, description=form.description.data,
        send_kind=form.send_kind.data or "none", send_host=form.send_host.data,
        send_port=form.send_port.data, send_ae=form.send_ae.data,
        stow_url=form.stow_url.data)
    if spec is None:
        for name, message in errors.items():
            getattr(form, name).errors.append(message)
        return None
    try:
        if peer is None:
            peer = create_peer(spec, credentials=form.stow_credentials.data,
                               by=current_user._get_current_object())
        else:
            update_peer(peer, spec, credentials=form.stow_credentials.data,
                        clear_credentials=form.clear_credentials.data,
                        by=current_user._get_current_object())
        db.session.commit()
    except (PeerError, SecretError) as exc:
        db.session.rollback()
        target = getattr(exc, "field", None) or "stow_credentials"
        getattr(form, target).errors.append(str(exc))
        return None
    except IntegrityError:
        db.session.rollback()
        form.ae_title.errors.append("another change to this AE title was saved meanwhile; "
                                    "try again")
        return None
    return peer


def _form_page(form: PeerForm, peer: DicomPeer | None, status: int = 200):
    if form.errors and form.stow_credentials.data:
        form.stow_credentials.errors.append("Not kept: type the credentials again.")
    return render_template("admin/peer_form.html", form=form, peer=peer,
                           action_form=EmptyForm()), status


@bp.route("/peers/new", methods=["GET", "POST"])
@role_required("admin")
def peer_new():
    """Add a peer."""
    form = PeerForm()
    form.set_owner_choices()
    if form.validate_on_submit():
        peer = _save(form, None)
        if peer is not None:
            flash(f"Peer {peer.ae_title} added.", "success")
            return redirect(url_for("admin.peers"))
    return _form_page(form, None, 422 if request.method == "POST" else 200)


@bp.route("/peers/<int:peer_id>", methods=["GET", "POST"])
@role_required("admin")
def peer_edit(peer_id: int):
    """Change a peer's settings (the stored credentials are never shown)."""
    peer = _peer_or_404(peer_id)
    form = PeerForm(obj=peer if request.method == "GET" else None)
    form.set_owner_choices(peer.owner)
    if request.method == "GET":
        form.owner.data = peer.owner.email
        form.addresses.data = "\n".join(peer.addresses or [])
        form.send_port.data = str(peer.send_port) if peer.send_port else ""
        form.stow_credentials.data = ""
    if form.validate_on_submit():
        if _save(form, peer) is not None:
            flash(f"Peer {peer.ae_title} saved.", "success")
            return redirect(url_for("admin.peers"))
        # A failed save rolled back: show the stored peer beside what was typed.
        db.session.refresh(peer)
    return _form_page(form, peer, 422 if request.method == "POST" else 200)


@bp.route("/peers/<int:peer_id>/<any(disable, enable):action>", methods=["POST"])
@role_required("admin")
def peer_action(peer_id: int, action: str):
    """Disable a peer (its associations are refused from now on) or enable it again."""
    peer = _peer_or_404(peer_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    if set_peer_active(peer, action == "enable", by=current_user._get_current_object()):
        db.session.commit()
        flash(f"Peer {peer.ae_title} {action}d.", "success")
    else:
        flash(f"Peer {peer.ae_title} was {action}d already.", "info")
    return redirect(url_for("admin.peers"))
