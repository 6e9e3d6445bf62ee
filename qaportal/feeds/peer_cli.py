"""`qaportal peer add|list|disable|enable` and `qaportal reader-id set|clear`.

Errors are one line on stderr starting with "error:", exit status 1 (2 for a usage error);
every change is audited as "command line (USER)".
"""

from __future__ import annotations

import getpass
import sys

import click
from flask.cli import with_appcontext


def _fail(message: str, code: int = 1):
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _operator() -> str:
    return f"command line ({getpass.getuser()})"


def _commit() -> None:
    """Commit; a concurrent change to the same AE title or identifier is one clear line."""
    from sqlalchemy.exc import IntegrityError

    from qaportal.extensions import db

    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        _fail("another change to the same AE title or identifier was saved meanwhile; "
              "nothing was changed, try again")


@click.group("peer")
def peer_group() -> None:
    """Known DICOM peers: the sites that may send studies, and where results go back."""


@peer_group.command("add")
@with_appcontext
@click.argument("ae_title")
@click.option("--address", "addresses", multiple=True, required=True, metavar="IP",
              help="An address or network the peer connects from (10.1.2.3, 10.1.0.0/16, "
                   "2001:db8::/32); repeat for several.")
@click.option("--owner", required=True, metavar="EMAIL",
              help="The radiologist account that owns what the peer sends.")
@click.option("--send-dicom", metavar="HOST:PORT:AE",
              help="Send signed results back by C-STORE to this AE.")
@click.option("--send-stow", metavar="URL",
              help="Send signed results back by STOW-RS to this DICOMweb base URL.")
@click.option("--stow-credentials-stdin", is_flag=True,
              help="Read the STOW-RS credentials from standard input: USER:PASSWORD or "
                   "\"Bearer TOKEN\" (never on the command line).")
@click.option("--description", default="", help="A note for administrators (the site).")
def peer_add(ae_title: str, addresses: tuple[str, ...], owner: str, send_dicom: str | None,
             send_stow: str | None, stow_credentials_stdin: bool, description: str) -> None:
    """Add the peer AE_TITLE (its calling AE title)."""
    from qaportal.feeds.peer_checks import PeerError, check_peer, parse_dicom_destination
    from qaportal.feeds.peer_service import create_peer, destination_label
    from qaportal.feeds.secrets import SecretError

    if send_dicom and send_stow:
        _fail("give either --send-dicom or --send-stow, not both", 2)
    if stow_credentials_stdin and not send_stow:
        _fail("--stow-credentials-stdin goes with --send-stow", 2)
    host = port = ae = ""
    if send_dicom:
        try:
            host, port, ae = parse_dicom_destination(send_dicom)
        except PeerError as exc:
            _fail(f"--send-dicom: {exc}", 2)
    kind = "dicom" if send_dicom else "stow" if send_stow else "none"
    spec, errors = check_peer(ae_title=ae_title, addresses=addresses, owner_email=owner,
                              description=description, send_kind=kind, send_host=host,
                              send_port=port or None, send_ae=ae, stow_url=send_stow or "")
    if errors:
        _fail("; ".join(_option_name(k) + v for k, v in errors.items()))
    credentials = None
    if stow_credentials_stdin:
        credentials = sys.stdin.readline().rstrip("\r\n")
        if not credentials.strip():
            _fail("no credentials on standard input")
    try:
        peer = create_peer(spec, credentials=credentials, by=None, actor_label=_operator())
    except (PeerError, SecretError) as exc:
        _fail(str(exc))
    _commit()
    click.echo(f"added peer {peer.ae_title} (id {peer.id}) owned by {peer.owner.email}, "
               f"from {', '.join(peer.addresses)}; results: {destination_label(peer)}")


def _option_name(key: str) -> str:
    return {"ae_title": "", "addresses": "--address: ", "owner": "--owner: ",
            "description": "--description: ", "send_host": "--send-dicom: ",
            "send_port": "--send-dicom: ", "send_ae": "--send-dicom: ",
            "stow_url": "--send-stow: "}.get(key, "")


@peer_group.command("list")
@with_appcontext
def peer_list() -> None:
    """List the known peers (never their credentials)."""
    import sqlalchemy as sa

    from qaportal.extensions import db
    from qaportal.feeds.peer_service import destination_label
    from qaportal.models import DicomPeer

    peers = db.session.scalars(sa.select(DicomPeer).order_by(DicomPeer.ae_title)).all()
    if not peers:
        click.echo("no peers", err=True)
        return
    click.echo("ae title\tstatus\towner\taddresses\tresults\tdescription")
    for p in peers:
        status = "active" if p.active else "disabled"
        if p.active and not p.owner.active:
            status = "owner deactivated"
        click.echo("\t".join([p.ae_title, status, p.owner.email, ",".join(p.addresses or []),
                              destination_label(p), p.description]))


def _set_active(ae_title: str, active: bool) -> None:
    from qaportal.feeds.peer_service import peer_by_ae, set_peer_active

    peer = peer_by_ae(ae_title)
    if peer is None:
        _fail(f"no peer with the AE title {ae_title.strip()!r} (see `qaportal peer list`)")
    if not set_peer_active(peer, active, by=None, actor_label=_operator()):
        click.echo(f"peer {peer.ae_title} was {'enabled' if active else 'disabled'} already")
        return
    _commit()
    click.echo(f"peer {peer.ae_title} {'enabled' if active else 'disabled'}")


@peer_group.command("disable")
@with_appcontext
@click.argument("ae_title")
def peer_disable(ae_title: str) -> None:
    """Refuse the peer AE_TITLE from now on (its history is kept)."""
    _set_active(ae_title, False)


@peer_group.command("enable")
@with_appcontext
@click.argument("ae_title")
def peer_enable(ae_title: str) -> None:
    """Accept the peer AE_TITLE again."""
    _set_active(ae_title, True)


@click.group("reader-id")
def reader_id_group() -> None:
    """The identifier a RIS uses for a radiologist (an NPI or a local id)."""


def _set_reader_id(email: str, value: str) -> None:
    from qaportal.auth.service import find_user
    from qaportal.feeds.reader_ids import ReaderIdError, set_reader_id

    user = find_user(email)
    if user is None:
        _fail(f"no account with the e-mail {email.strip().lower()}")
    old = user.reader_id
    try:
        changed = set_reader_id(user, value, by=None, actor_label=_operator())
    except ReaderIdError as exc:
        _fail(str(exc))
    if not changed:
        click.echo(f"{user.email}: reader identifier unchanged ({old or 'none'})")
        return
    _commit()
    if user.reader_id:
        click.echo(f"{user.email}: reader identifier {user.reader_id}")
    else:
        click.echo(f"{user.email}: reader identifier {old} removed")


@reader_id_group.command("set")
@with_appcontext
@click.argument("email")
@click.argument("reader_id", metavar="ID")
def reader_id_set(email: str, reader_id: str) -> None:
    """Give the radiologist EMAIL the reader identifier ID ("" removes it)."""
    _set_reader_id(email, reader_id)


@reader_id_group.command("clear")
@with_appcontext
@click.argument("email")
def reader_id_clear(email: str) -> None:
    """Remove the reader identifier of EMAIL."""
    _set_reader_id(email, "")
