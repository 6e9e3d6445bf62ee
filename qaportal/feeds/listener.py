"""The DICOM listener: a Storage SCP (with Verification) for the known peers.

At association request the calling AE title and the peer's source address must match an
active known peer (qaportal.feeds.peers.find_peer), else the association is rejected
(permanent, "calling AE title not recognized") and audited. An accepted association's
instances are stored by an AssociationReceiver (qaportal.feeds.receiver) for the peer's
owner. Every accepted socket gets TCP_NODELAY (a C-STORE response is a small packet the
peer waits for; delayed, a loopback association runs at a fraction of its speed); DICOM
TLS wraps it when a certificate and key are configured.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import weakref
from dataclasses import dataclass

from flask import Flask
from pynetdicom import AE, AllStoragePresentationContexts, _config, evt
from pynetdicom.sop_class import Verification
from pynetdicom.transport import ThreadedAssociationServer

from qaportal import audit
from qaportal.extensions import db
from qaportal.feeds.peers import find_peer
from qaportal.feeds.receiver import PROCESSING_FAILURE, AssociationReceiver

# Accepted transfer syntaxes, in the listener's order of preference.
TRANSFER_SYNTAXES = [
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired, still sent by old devices)
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline (Process 1)
    "1.2.840.10008.1.2.4.51",  # JPEG Extended (Process 2 & 4)
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless (Process 14)
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless, First-Order Prediction (Process 14, SV1)
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 (Lossless Only)
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.4.201",  # High-Throughput JPEG 2000 (Lossless Only)
    "1.2.840.10008.1.2.4.203",  # High-Throughput JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE Lossless
]
MAX_PDU = 1024 * 1024  # what peers may send in one P-DATA PDU (fewer, larger reads)
MAX_ASSOCIATIONS = 32
TLS_HANDSHAKE_TIMEOUT = 10.0  # seconds
REJECT_PERMANENT, SERVICE_USER, CALLING_AE_NOT_RECOGNIZED = 0x01, 0x01, 0x03
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ListenConfig:
    """Where and how the listener listens."""

    ae_title: str
    port: int
    bind: str
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None

    @classmethod
    def from_app(cls, app: Flask, ae_title: str | None = None, port: int | None = None,
                 bind: str | None = None) -> ListenConfig:
        cfg = app.config
        return cls(ae_title or cfg["DICOM_LISTEN_AE"],
                   int(port if port is not None else cfg["DICOM_LISTEN_PORT"]),
                   bind or cfg["DICOM_LISTEN_BIND"], cfg.get("DICOM_TLS_CERT"),
                   cfg.get("DICOM_TLS_KEY"), cfg.get("DICOM_TLS_CA"))

    def ssl_context(self) -> ssl.SSLContext | None:
        """Return the server's TLS context, or None without a certificate configured.

        With a CA bundle the peer must present a certificate it signed (mutual TLS)."""
        if not self.tls_cert and not self.tls_key:
            return None
        if not (self.tls_cert and self.tls_key):
            raise ValueError("DICOM TLS needs both DICOM_TLS_CERT and DICOM_TLS_KEY")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.tls_cert, self.tls_key)
        if self.tls_ca:
            context.load_verify_locations(self.tls_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        return context


class NoDelayAssociationServer(ThreadedAssociationServer):
    """The association server, with TCP_NODELAY set on every accepted socket."""

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        client, address = self.socket.accept()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context:
            # The handshake runs here, in the accepting thread: bounded, so that a peer
            # that connects and stays silent cannot hold up every other connection.
            previous = client.gettimeout()
            client.settimeout(TLS_HANDSHAKE_TIMEOUT)
            try:
                client = self.ssl_context.wrap_socket(client, server_side=True)
            except OSError:
                client.close()
                raise
            client.settimeout(previous)
        return client, address


class NoDelayAssociationServer6(NoDelayAssociationServer):
    address_family = socket.AF_INET6


def _clean_ae(value: object) -> str:
    """The calling AE title as text fit for the audit log (printable, at most 16)."""
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    return "".join(c if c.isprintable() else "?" for c in text.strip())[:16]


def application_entity(ae_title: str) -> AE:
    """The listener's AE: every storage SOP class in TRANSFER_SYNTAXES, Verification, the
    largest PDU, and pynetdicom's per-message logging off (never patient data in logs)."""
    _config.LOG_HANDLER_LEVEL = "none"
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    ae = AE(ae_title=ae_title)
    ae.maximum_pdu_size = MAX_PDU
    ae.maximum_associations = MAX_ASSOCIATIONS
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification, TRANSFER_SYNTAXES[:3])
    return ae


class Listener:
    """The Storage SCP: decides on associations and hands their instances to receivers."""

    def __init__(self, app: Flask, config: ListenConfig) -> None:
        self.app = app
        self.config = config
        self._receivers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self.server: NoDelayAssociationServer | None = None
        self.ae = application_entity(config.ae_title)

    def handlers(self) -> list:
        return [(evt.EVT_REQUESTED, self._on_request), (evt.EVT_C_STORE, self._on_store),
                (evt.EVT_RELEASED, self._on_end, ["released"]),
                (evt.EVT_ABORTED, self._on_end, ["aborted"]),
                (evt.EVT_CONN_CLOSE, self._on_close)]

    def start(self) -> NoDelayAssociationServer:
        """Start serving in background threads; return the server (its shutdown() stops)."""
        cls = NoDelayAssociationServer6 if ":" in self.config.bind else NoDelayAssociationServer
        self.server = self.ae.make_server(
            (self.config.bind, self.config.port), ae_title=self.config.ae_title,
            ssl_context=self.config.ssl_context(), evt_handlers=self.handlers(),
            server_class=cls)
        self.ae._servers.append(self.server)  # as AE.start_server does: shutdown() expects it
        thread = threading.Thread(target=self.server.serve_forever, name="dicom-listener",
                                  daemon=True)
        thread.start()
        return self.server

    @property
    def port(self) -> int:
        return self.server.server_address[1] if self.server else self.config.port

    def stop(self) -> None:
        """Stop accepting, abort what is still open, and finish every batch."""
        if self.server is not None:
            self.server.shutdown()
            self.server = None
        for assoc in list(self.ae.active_associations):
            assoc.abort()
        with self._lock:
            receivers = list(self._receivers.values())
        for receiver in receivers:
            receiver.finish()

    # -- events -----------------------------------------------------------------------
    def _on_request(self, event) -> None:
        assoc = event.assoc
        calling = _clean_ae(assoc.requestor.primitive.calling_ae_title)
        address = str(assoc.requestor.address)
        with self.app.app_context():
            peer = find_peer(calling, address)
            if peer is None:
                audit.record("feeds.dicom_association_rejected", None,
                             actor_label=f"dicom:{calling}", calling_ae=calling,
                             address=address, reason="calling AE title or address not known")
                db.session.commit()
                assoc.acse.send_reject(REJECT_PERMANENT, SERVICE_USER,
                                       CALLING_AE_NOT_RECOGNIZED)
                assoc.kill()  # as pynetdicom's own rejection: the A-ASSOCIATE-RJ goes out first
                return
            receiver = AssociationReceiver(self.app, peer_id=peer.id, owner_id=peer.owner_id,
                                           calling_ae=calling, address=address)
            audit.record("feeds.dicom_association_accepted", ("dicom_peers", peer.id),
                         actor=peer.owner, actor_label=f"dicom:{calling}", calling_ae=calling,
                         address=address, tls=self.config.tls_cert is not None)
            db.session.commit()
        with self._lock:
            self._receivers[assoc] = receiver

    def _receiver(self, assoc) -> AssociationReceiver | None:
        with self._lock:
            return self._receivers.get(assoc)

    def _on_store(self, event) -> int:
        receiver = self._receiver(event.assoc)
        if receiver is None:  # not accepted through _on_request: never stored
            return PROCESSING_FAILURE
        request = event.request
        return receiver.store(str(request.AffectedSOPClassUID),
                              str(request.AffectedSOPInstanceUID),
                              str(event.context.transfer_syntax),
                              request.DataSet.getvalue())

    def _on_end(self, event, how: str) -> None:
        receiver = self._receiver(event.assoc)
        if receiver is not None:
            receiver.ended_as = how

    def _on_close(self, event) -> None:
        with self._lock:
            receiver = self._receivers.pop(event.assoc, None)
        if receiver is None:
            return
        assoc = event.assoc
        if threading.current_thread() is assoc or not assoc.is_alive():
            self._finish(assoc, receiver)
            return

        # The socket closed under the association (its reader saw it first): let the
        # association's own thread say how it ended (released, aborted) before finishing.
        def finish_after() -> None:
            assoc.join(timeout=30)
            self._finish(assoc, receiver)

        threading.Thread(target=finish_after, name="dicom-association-end", daemon=True).start()

    @staticmethod
    def _finish(assoc, receiver: AssociationReceiver) -> None:
        if receiver.ended_as == "dropped" and (assoc.is_aborted or assoc.acse.is_aborted()):
            receiver.ended_as = "aborted"
        receiver.finish()
