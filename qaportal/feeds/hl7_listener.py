"""The HL7 v2 listener: MLLP over TCP (one thread per connection, several messages each).

Each message is framed 0x0B ... 0x1C 0x0D, handled in its own transaction and answered
with an ACK in the same framing before the next one is read. The sender must be a known
peer: an active DicomPeer whose allowed addresses hold the connection's source address
(several such peers: the one whose AE title equals MSH-4 or MSH-3); its owner owns the
reads. Anything else is answered AR and nothing is stored.
"""

from __future__ import annotations

import logging
import signal
import socket
import socketserver
import threading

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy.exc import IntegrityError

from qaportal import audit
from qaportal.extensions import db
from qaportal.feeds import hl7_message, reads
from qaportal.feeds.peers import address_allowed
from qaportal.models import DicomPeer, IncomingRead, User

START, END = b"\x0b", b"\x1c\x0d"
log = logging.getLogger(__name__)


def find_hl7_peer(address: str, facility: str, application: str) -> DicomPeer | None:
    """Return the active peer (with an active owner) this HL7 sender is, or None."""
    peers = [p for p in db.session.scalars(
        sa.select(DicomPeer).join(User, User.id == DicomPeer.owner_id)
        .where(DicomPeer.active.is_(True), User.active.is_(True)).order_by(DicomPeer.id))
        if address_allowed(address, p.addresses or [])]
    if len(peers) > 1:
        names = {facility.strip().upper(), application.strip().upper()} - {""}
        peers = [p for p in peers if p.ae_title.strip().upper() in names]
    return peers[0] if len(peers) == 1 else None


def _answer_for(row: IncomingRead) -> tuple[str, str]:
    if row.status == "refused":
        return "AE", row.error or "the read was refused"
    return "AA", ""


def handle_message(data: bytes, address: str) -> bytes:
    """Process one framed message's bytes; return the ACK's bytes (app context needed)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    header = hl7_message.read_header(text)
    try:
        code, reason, hl7_code = _process(text, header, address)
    except Exception as exc:  # noqa: BLE001 - answer AE, never drop the connection
        db.session.rollback()
        log.warning("HL7 message failed (%s)", type(exc).__name__)
        code, reason, hl7_code = "AE", "application internal error", "207"
    finally:
        db.session.remove()
    return hl7_message.ack(header, code, reason, hl7_code).encode("utf-8")


def _process(text: str, header: hl7_message.Header, address: str) -> tuple[str, str, str]:
    peer = find_hl7_peer(address, header.sending_facility, header.sending_application)
    if peer is None:
        audit.record("feeds.hl7_refused", None, actor_label="hl7-listener",
                     reason="unknown sender", address=address)
        db.session.commit()
        log.warning("HL7 message refused: unknown sender at %s", address)
        return "AR", "unknown sender", "207"
    owner = peer.owner
    try:
        header, msg = hl7_message.parse(text)
        reads.check(msg)
    except (hl7_message.MessageRejected, reads.ReadRejected) as exc:
        ack, code = (exc.ack, exc.hl7_code) if isinstance(exc, hl7_message.MessageRejected) \
            else ("AE", "101")
        audit.record("feeds.hl7_refused", peer, actor=owner, reason=str(exc)[:200], ack=ack)
        db.session.commit()
        return ack, str(exc), code
    for attempt in (1, 2):
        duplicate = reads.find_duplicate(msg, owner)
        if duplicate is not None:
            audit.record("feeds.read_duplicate", duplicate, actor=owner, source="hl7")
            db.session.commit()
            return (*_answer_for(duplicate), "207")
        try:
            row = reads.receive(msg, owner, peer)
            db.session.commit()
        except IntegrityError:  # the same message on another connection at the same time
            db.session.rollback()
            if attempt == 2:
                raise
            continue
        break
    if row.status in ("waiting_images", "ordered"):
        reads.retry_waiting(row.id)
    return (*_answer_for(row), "207")


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server: MllpServer = self.server  # type: ignore[assignment]
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(server.idle_timeout)
        address = self.client_address[0]
        buf = bytearray()
        while True:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, OSError):
                return
            if not chunk:
                return
            buf += chunk
            while True:
                start = buf.find(START)
                if start < 0:
                    buf.clear()  # bytes outside a frame are ignored
                    break
                end = buf.find(END, start)
                if end < 0:
                    if len(buf) - start > server.max_bytes:
                        self._too_large(sock, bytes(buf[start + 1:start + 4096]))
                        return
                    if start:
                        del buf[:start]
                    break
                frame = bytes(buf[start + 1:end])
                del buf[:end + 2]
                if len(frame) > server.max_bytes:
                    self._too_large(sock, frame[:4096])
                    return
                sock.sendall(START + server.handle(frame, address) + END)

    def _too_large(self, sock: socket.socket, head: bytes) -> None:
        header = hl7_message.read_header(head.decode("latin-1"))
        reply = hl7_message.ack(header, "AR", "message too large", "207").encode()
        try:
            sock.sendall(START + reply + END)
        except OSError:
            pass


class MllpServer(socketserver.ThreadingTCPServer):
    """An MLLP listener; handle() runs each message inside the app's context."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, app: Flask, bind: str, port: int):
        self.address_family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        super().__init__((bind, port), _Handler)
        self.app = app
        self.max_bytes = int(app.config["HL7_MAX_MESSAGE_BYTES"])
        self.idle_timeout = float(app.config["HL7_IDLE_TIMEOUT"])

    def handle(self, frame: bytes, address: str) -> bytes:
        with self.app.app_context():
            return handle_message(frame, address)


def start_in_thread(app: Flask, bind: str = "127.0.0.1", port: int = 0) -> MllpServer:
    """Start a listener in a background thread (port 0: a free one); stop with shutdown()."""
    server = MllpServer(app, bind, port)
    threading.Thread(target=server.serve_forever, name="hl7-listener", daemon=True).start()
    return server


@click.command("hl7-listen")
@click.option("--port", type=int, default=None, help="TCP port (default HL7_LISTEN_PORT, 2575).")
@click.option("--bind", default=None, help="Address to bind (default HL7_LISTEN_BIND).")
@with_appcontext
def hl7_listen(port: int | None, bind: str | None) -> None:
    """Receive HL7 v2 reads and orders over MLLP (ORU^R01, ORM^O01, OMI^O23)."""
    app = current_app._get_current_object()
    port = app.config["HL7_LISTEN_PORT"] if port is None else port
    bind = bind or app.config["HL7_LISTEN_BIND"]
    server = MllpServer(app, bind, port)
    click.echo(f"HL7 listener on {bind}:{server.server_address[1]} (MLLP); Ctrl-C stops it.")

    def _stop(signum, frame):  # SIGTERM (service managers): stop like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
