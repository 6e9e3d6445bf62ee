"""Send result objects to a peer: DICOM C-STORE or DICOMweb STOW-RS.

`send_datasets` never raises for a network failure: a refused or aborted association, a
failure status, a connection error, a timeout or an HTTP error all come back as
SendResult(ok=False, peer_status=..., detail=...). The detail names SOP classes, statuses
and addresses, never patient data.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import threading
from dataclasses import dataclass

import requests
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt

from qaportal.models import DicomPeer

DEFAULT_AE = "QAPORTAL"
DEFAULT_TIMEOUT = 30.0
# C-STORE statuses that mean stored (0x0000) or stored with a warning (0xB000, 0xB006, 0xB007).
STORED = {0x0000}
STORED_WITH_WARNING = {0xB000, 0xB006, 0xB007}
STATUS_TEXT = {0xA700: "out of resources", 0xA900: "data set does not match SOP class",
               0xC000: "cannot understand", 0x0117: "invalid SOP instance",
               0x0122: "SOP class not supported", 0x0124: "not authorized",
               0x0110: "processing failure", 0x0211: "unrecognized operation"}


@dataclass(frozen=True)
class SendResult:
    """How a delivery went: ok, the peer's status (DICOM status or HTTP code), what happened."""

    ok: bool
    peer_status: str | None
    detail: str


@dataclass(frozen=True)
class SendSettings:
    """The portal's own AE title and the time limits (seconds) of one delivery."""

    ae_title: str = DEFAULT_AE
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_app(cls) -> SendSettings:
        """Read DICOM_SEND_AE (else DICOM_LISTEN_AE) and DICOM_SEND_TIMEOUT when in an app."""
        from flask import current_app, has_app_context

        if not has_app_context():
            return cls()
        cfg = current_app.config
        title = cfg.get("DICOM_SEND_AE") or cfg.get("DICOM_LISTEN_AE") or DEFAULT_AE
        return cls(ae_title=str(title), timeout=float(cfg.get("DICOM_SEND_TIMEOUT")
                                                      or DEFAULT_TIMEOUT))


def send_datasets(peer: DicomPeer, datasets: list[Dataset],
                  settings: SendSettings | None = None) -> SendResult:
    """Send the datasets to the peer's result destination (its send_kind)."""
    settings = settings or SendSettings.from_app()
    if not datasets:
        return SendResult(False, None, "nothing to send")
    if peer.send_kind == "dicom":
        if not peer.send_host or not peer.send_port or not peer.send_ae:
            return SendResult(False, None, "the peer's C-STORE destination is incomplete "
                                           "(host, port and AE title are needed)")
        return c_store(peer.send_host, int(peer.send_port), peer.send_ae, datasets, settings)
    if peer.send_kind == "stow":
        if not peer.stow_url:
            return SendResult(False, None, "the peer's STOW-RS destination has no URL")
        credentials = None
        if peer.stow_credentials:
            try:
                from qaportal.feeds.secrets import unseal  # type: ignore[import-not-found]

                credentials = unseal(peer.stow_credentials)
            except Exception as exc:  # noqa: BLE001 - a missing key or a damaged value
                return SendResult(False, None, "the peer's STOW-RS credentials cannot be "
                                               f"read ({type(exc).__name__})")
        return stow(peer.stow_url, datasets, settings, credentials=credentials)
    return SendResult(False, None, "the peer has no result destination")


# --- DICOM C-STORE -----------------------------------------------------------------------

def _transfer_syntax(ds: Dataset) -> UID:
    meta = getattr(ds, "file_meta", None)
    return UID(getattr(meta, "TransferSyntaxUID", None) or ExplicitVRLittleEndian)


def _no_delay(event) -> None:
    sock = getattr(event.assoc.dul.socket, "socket", None)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _ConnectErrors(logging.Handler):
    """Keep the errors pynetdicom logs while associating (it returns no reason): a
    connection error (its reactor thread) or an ACSE timeout (the calling thread)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append((record.threadName or "", record.getMessage()))

    def reason(self, threads: set[str]) -> tuple[str, str] | None:
        """Return (status, reason) from the errors the association's own threads logged."""
        mine = [m for name, m in self.messages if name in threads]
        for message in reversed(mine):
            if message.startswith("TCP Initialisation Error"):
                return "no connection", message.removeprefix("TCP Initialisation Error: ")
            if "timeout" in message.lower():
                return "no answer", None
        return None


def _status_text(code: int) -> str:
    text = STATUS_TEXT.get(code) or STATUS_TEXT.get(code & 0xFF00)
    if text is None and 0xC000 <= code <= 0xCFFF:
        text = "cannot understand"
    return f"0x{code:04X}" + (f" ({text})" if text else "")


def _rejection(assoc) -> tuple[str, str]:
    primitive = assoc.acceptor.primitive
    try:
        code = f"{primitive.result}/{primitive.result_source}/{primitive.diagnostic}"
        text = f"{primitive.result_str}, {primitive.source_str}: {primitive.reason_str}"
    except (AttributeError, KeyError, TypeError):
        code, text = "rejected", "no reason given"
    return f"A-ASSOCIATE-RJ {code}", f"association rejected ({text})"


def c_store(host: str, port: int, called_ae: str, datasets: list[Dataset],
            settings: SendSettings) -> SendResult:
    """Store the datasets over one association; stop at no failure, report every one."""
    where = f"{called_ae}@{host}:{port}"
    ae = AE(ae_title=settings.ae_title)
    for timeout in ("acse_timeout", "dimse_timeout", "network_timeout", "connection_timeout"):
        setattr(ae, timeout, settings.timeout)
    contexts: dict[tuple[str, str], list[UID]] = {}
    for ds in datasets:
        syntax = _transfer_syntax(ds)
        offered = ([ExplicitVRLittleEndian, ImplicitVRLittleEndian]
                   if not syntax.is_compressed else [syntax])
        contexts[(str(ds.SOPClassUID), str(offered[0]))] = offered
    for (sop_class, _first), offered in contexts.items():
        ae.add_requested_context(sop_class, offered)
    capture = _ConnectErrors()
    transport_log = logging.getLogger("pynetdicom")
    transport_log.addHandler(capture)
    try:
        assoc = ae.associate(host, port, ae_title=called_ae,
                             evt_handlers=[(evt.EVT_CONN_OPEN, _no_delay)])
        if assoc.is_rejected:
            status, text = _rejection(assoc)
            return SendResult(False, status, f"{where}: {text}")
        if not assoc.is_established:
            status, reason = capture.reason(
                {assoc.name, assoc.dul.name, threading.current_thread().name}) or (
                "aborted" if assoc.is_aborted else "no answer", None)
            if reason is None:
                reason = ("the peer aborted the association" if status == "aborted"
                          else f"no answer within {settings.timeout:g} s")
            return SendResult(False, status, f"{where}: association not established "
                                             f"({reason})")
        try:
            return _store_all(assoc, datasets, where)
        finally:
            if assoc.is_established:
                assoc.release()
    except OSError as exc:  # the name does not resolve, no route...
        return SendResult(False, "no connection",
                          f"{where}: {exc.strerror or type(exc).__name__}")
    except Exception as exc:  # noqa: BLE001 - whatever happens, no raise
        # Only the exception's type: its message may quote a data set's values.
        return SendResult(False, "error", f"{where}: unexpected {type(exc).__name__}")
    finally:
        transport_log.removeHandler(capture)
        ae.shutdown()


def _store_all(assoc, datasets: list[Dataset], where: str) -> SendResult:
    stored, warnings, failures = 0, [], []
    first_failure: str | None = None
    for ds in datasets:
        name = UID(ds.SOPClassUID).name
        try:
            status = assoc.send_c_store(ds)
        except ValueError:  # the peer accepted no presentation context for this SOP class
            failures.append(f"{name}: not accepted by the peer (no presentation context)")
            first_failure = first_failure or "no presentation context"
            continue
        if not status or "Status" not in status:
            failures.append(f"{name}: no answer (timeout or association aborted)")
            first_failure = first_failure or ("aborted" if assoc.is_aborted else "no answer")
            if not assoc.is_established:
                break
            continue
        code = int(status.Status)
        if code in STORED:
            stored += 1
        elif code in STORED_WITH_WARNING:
            stored += 1
            warnings.append(f"{name}: stored with warning {_status_text(code)}")
        else:
            failures.append(f"{name}: refused with {_status_text(code)}")
            first_failure = first_failure or f"0x{code:04X}"
    summary = f"{where}: stored {stored} of {len(datasets)}"
    notes = "; ".join(failures + warnings)
    if failures:
        return SendResult(False, first_failure, f"{summary}; {notes}")
    last = "0x0000" if not warnings else warnings[-1].split("warning ")[-1][:6]
    return SendResult(True, last, summary + (f"; {notes}" if notes else ""))


# --- DICOMweb STOW-RS --------------------------------------------------------------------

def _multipart(datasets: list[Dataset]) -> tuple[bytes, str]:
    from qaportal.feeds.results import part10_bytes

    boundary = f"qaportal-{secrets.token_hex(16)}"
    parts = []
    for ds in datasets:
        parts.append(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
                     + part10_bytes(ds) + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def _auth_header(credentials: str | None) -> dict[str, str]:
    """credentials: "Bearer <token>", "Basic <base64>", or "user:password" (HTTP Basic)."""
    if not credentials:
        return {}
    if credentials.startswith(("Bearer ", "Basic ")):
        return {"Authorization": credentials}
    import base64

    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


def _failed_sops(response: requests.Response) -> list[str]:
    """Return the failure reasons a STOW-RS answer lists (Failed SOP Sequence)."""
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        return []
    failed = (body or {}).get("00081198", {}).get("Value", []) if isinstance(body, dict) else []
    reasons = []
    for item in failed:
        reason = (item.get("00081197") or {}).get("Value", [None])[0]
        reasons.append(_status_text(int(reason)) if isinstance(reason, int) else "failed")
    return reasons


def stow(base_url: str, datasets: list[Dataset], settings: SendSettings, *,
         credentials: str | None = None) -> SendResult:
    """POST the datasets to base_url + "/studies" as one multipart/related request."""
    url = base_url.rstrip("/") + "/studies"
    where = url.split("?", 1)[0]
    try:
        body, content_type = _multipart(datasets)
        with requests.Session() as http:
            http.trust_env = False  # neither a proxy nor a .netrc from the environment
            response = http.post(url, data=body, timeout=settings.timeout,
                                 allow_redirects=False,
                                 headers={"Content-Type": content_type,
                                          "Accept": "application/dicom+json",
                                          **_auth_header(credentials)})
    except requests.Timeout:
        return SendResult(False, "timeout", f"{where}: no answer within {settings.timeout:g} s")
    except requests.RequestException as exc:
        return SendResult(False, "no connection", f"{where}: cannot connect "
                                                   f"({type(exc).__name__})")
    except Exception as exc:  # noqa: BLE001 - whatever happens, no raise (type only, as above)
        return SendResult(False, "error", f"{where}: unexpected {type(exc).__name__}")
    code = str(response.status_code)
    if response.status_code not in (200, 202):
        return SendResult(False, code, f"{where}: HTTP {code} {response.reason or ''}".strip())
    failed = _failed_sops(response)
    if failed:
        return SendResult(False, code, f"{where}: {len(datasets) - len(failed)} of "
                                       f"{len(datasets)} stored; refused: {', '.join(failed)}")
    return SendResult(True, code, f"{where}: stored {len(datasets)} of {len(datasets)}")
