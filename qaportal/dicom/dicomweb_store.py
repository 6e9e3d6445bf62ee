"""An ImageStore kept in a PACS: STOW-RS to store, WADO-RS to read, QIDO-RS to list.

The archive files instances by their UIDs, the portal by internal keys, so every key is
mapped to its (Study, Series, SOP Instance) UIDs in a `KeyIndex` the caller provides (the
application keeps it in its database, table pacs_objects, each key mapped in a transaction
of its own once the archive has its file; tests may use MemoryIndex). put() reads the
UIDs from the file's header and STOWs the file as it is (files put with sync=False wait
in memory, per thread, and go in one STOW-RS request per 32 MiB or at sync()). Reads ask
WADO-RS for the instance with `transfer-syntax=*`, so an archive that keeps what it was
sent returns the very bytes stored, and every read is checked against the recorded
SHA-256: an archive that re-encodes, re-compresses or edits the files it keeps is refused
(StoredFileCorrupt), never served silently.

delete() drops the key's mapping. DICOMweb defines no deletion, so the instance stays in
the archive (an orphan `qaportal verify-storage --archive-orphans` lists) unless the store was made
with delete="orthanc": then, when no other key maps to the same SOP Instance UID, the
instance is removed through Orthanc's own REST API (POST /tools/lookup, DELETE
/instances/<id>), which must be reachable at the URL's origin with the same credentials.

Nothing here imports Flask or SQLAlchemy; passwords and UIDs are never logged.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import BinaryIO, Protocol
from urllib.parse import urlsplit

import requests

from .errors import DicomRejected, StoredFileCorrupt, StoredFileMissing
from .store import StoredFile, _as_stream, validate_key

UIDs = tuple[str, str, str]  # study, series, SOP instance
_DICOM = 'multipart/related; type="application/dicom"'
_UID_RE = re.compile(r"[0-9]+(\.[0-9]+)*")
_REMEMBERED = 10_000  # keys put by this process whose UIDs are kept in memory
_BATCH_BYTES = 32 * 1024 * 1024  # files put with sync=False are sent this many at a time


class KeyIndex(Protocol):
    """Where a DicomWebStore keeps which UIDs each key stands for."""

    def get(self, key: str) -> UIDs | None: ...

    def set(self, key: str, uids: UIDs, sha256: str, size: int) -> None: ...

    def drop(self, key: str) -> None: ...

    def others_with_sop(self, sop_uid: str, key: str) -> bool:
        """Tell whether a key other than `key` maps to this SOP Instance UID."""
        ...

    def keys(self) -> Iterator[str]: ...

    def sop_uids(self) -> set[str]: ...


class MemoryIndex:
    """A KeyIndex in memory (one process; for tests and tools)."""

    def __init__(self) -> None:
        self._map: dict[str, UIDs] = {}

    def get(self, key: str) -> UIDs | None:
        return self._map.get(key)

    def set(self, key: str, uids: UIDs, sha256: str, size: int) -> None:
        self._map[key] = uids

    def drop(self, key: str) -> None:
        self._map.pop(key, None)

    def others_with_sop(self, sop_uid: str, key: str) -> bool:
        return any(k != key and u[2] == sop_uid for k, u in self._map.items())

    def keys(self) -> Iterator[str]:
        return iter(sorted(self._map))

    def sop_uids(self) -> set[str]:
        return {u[2] for u in self._map.values()}


class ArchiveError(OSError):
    """The archive refused or failed a request (its status, never its body's patient data)."""


class DicomWebStore:
    """Keep image files in a DICOMweb archive (see the module docstring)."""

    def __init__(self, base_url: str, index: KeyIndex, *, username: str | None = None,
                 password: str | None = None, timeout: float = 60.0,
                 verify_writes: bool = False, delete: str = "mapping") -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("the DICOMweb store needs an absolute http(s):// URL")
        if delete not in {"mapping", "orthanc"}:
            raise ValueError("delete must be 'mapping' or 'orthanc'")
        self.base_url = base_url.rstrip("/")
        self.index = index
        self.timeout = timeout
        self.verify_writes = verify_writes
        self.delete_mode = delete
        self._auth = (username, password or "") if username else None
        self._local = threading.local()
        self._recent: OrderedDict[str, UIDs] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the credentials
        return f"DicomWebStore({self.base_url!r})"

    # --- HTTP ----------------------------------------------------------------------------

    @property
    def http(self) -> requests.Session:
        """One keep-alive session per thread (requests sessions are not thread-safe)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.auth = self._auth
            self._local.session = session
        return session

    def _request(self, method: str, url: str, **kw) -> requests.Response:
        try:
            return self.http.request(method, url, timeout=self.timeout, **kw)
        except requests.RequestException as exc:
            raise ArchiveError(f"archive unreachable ({type(exc).__name__})") from exc

    # --- the ImageStore protocol -----------------------------------------------------------

    def put(self, key: str, src_path: str | os.PathLike[str] | BinaryIO,
            *, sync: bool = True) -> StoredFile:
        """Map key to the file's UIDs and STOW the file to the archive: at once, or with
        sync=False in a batch sent by sync() (or once 32 MiB wait)."""
        validate_key(key)
        with _as_stream(src_path) as src:
            data = src.read()
        uids = file_uids(data)
        sha256 = hashlib.sha256(data).hexdigest()
        self._remember(key, uids)
        pending = self._pending()
        pending[key] = (uids, sha256, data)
        if sync or sum(len(p[2]) for p in pending.values()) >= _BATCH_BYTES:
            self._send_pending()
        return StoredFile(key=key, sha256=sha256, size=len(data))

    def sync(self, keys: Iterable[str]) -> None:
        """Send the files put with sync=False (one STOW-RS request); a STOW-RS success
        means the archive has them."""
        self._send_pending()

    def _pending(self) -> dict[str, tuple[UIDs, str, bytes]]:
        pending = getattr(self._local, "pending", None)
        if pending is None:
            pending = self._local.pending = {}
        return pending

    def _send_pending(self) -> None:
        pending = self._pending()
        if not pending:
            return
        batch = list(pending.items())
        pending.clear()
        boundary = uuid.uuid4().hex
        body = []
        for _, (_, _, data) in batch:
            body += [f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode(),
                     data, b"\r\n"]
        body.append(f"--{boundary}--\r\n".encode())
        response = self._request(
            "POST", self.base_url + "/studies", data=b"".join(body),
            headers={"Content-Type": f"{_DICOM}; boundary={boundary}",
                     "Accept": "application/dicom+json"})
        if response.status_code not in (200, 202):
            raise ArchiveError(f"archive refused the instances (HTTP {response.status_code})")
        _check_stow_answer(response)
        for key, (uids, sha256, data) in batch:  # mapped once the archive has the file
            self.index.set(key, uids, sha256, len(data))
        if self.verify_writes:
            for key, (uids, sha256, _) in batch:
                if hashlib.sha256(self._fetch(key, uids)).hexdigest() != sha256:
                    # The archive keeps something else than it was sent.
                    raise StoredFileCorrupt(key)

    def open(self, key: str) -> BinaryIO:
        """Return the stored bytes as a stream (unchecked: use read_verified to serve)."""
        return io.BytesIO(self._fetch(key, self._uids(key)))

    def read_verified(self, key: str, sha256: str) -> bytes:
        """Return the bytes the archive holds for key, raising StoredFileCorrupt if their
        SHA-256 differs from the recorded one (an edited or re-encoded file)."""
        data = self._fetch(key, self._uids(key))
        if hashlib.sha256(data).hexdigest() != sha256.lower():
            raise StoredFileCorrupt(key)
        return data

    def verify(self, key: str, sha256: str) -> None:
        """Check the archive's copy of key against its SHA-256."""
        self.read_verified(key, sha256)

    def exists(self, key: str) -> bool:
        """Tell whether key is mapped and the archive has its instance."""
        uids = self._uids_or_none(key)
        if uids is None:
            return False
        response = self._request("GET", self._instance_url(uids) + "/metadata",
                                 headers={"Accept": "application/dicom+json"})
        return response.status_code == 200

    def delete(self, key: str) -> None:
        """Forget key; with delete="orthanc" also remove its instance from the archive when
        no other key maps to the same SOP Instance UID."""
        validate_key(key)
        uids = self._uids_or_none(key)
        self._pending().pop(key, None)
        self.index.drop(key)
        with self._lock:
            self._recent.pop(key, None)
            shared = uids is not None and any(u[2] == uids[2] for u in self._recent.values())
        if uids is None or self.delete_mode != "orthanc" or shared \
                or self.index.others_with_sop(uids[2], key):
            return
        self._orthanc_delete(uids[2])

    def iter_keys(self) -> Iterator[str]:
        """Yield every mapped key."""
        return self.index.keys()

    def unmapped_instances(self) -> list[UIDs]:
        """Return the archive's instances that no key maps to (QIDO-RS: every study, then
        its instances), e.g. left by a crash between STOW and commit."""
        known = self.index.sop_uids()
        found = []
        for study in self._qido("/studies", "0020000D"):
            for uids in self._qido_instances(study):
                if uids[2] not in known:
                    found.append(uids)
        return found

    # --- helpers -----------------------------------------------------------------------

    def _remember(self, key: str, uids: UIDs) -> None:
        with self._lock:
            self._recent[key] = uids
            self._recent.move_to_end(key)
            while len(self._recent) > _REMEMBERED:
                self._recent.popitem(last=False)

    def _uids_or_none(self, key: str) -> UIDs | None:
        validate_key(key)
        uids = self.index.get(key)
        if uids is None:
            with self._lock:
                uids = self._recent.get(key)
        return uids

    def _uids(self, key: str) -> UIDs:
        uids = self._uids_or_none(key)
        if uids is None:
            raise StoredFileMissing(key)
        return uids

    def _instance_url(self, uids: UIDs) -> str:
        for uid in uids:
            if not _UID_RE.fullmatch(uid):
                raise StoredFileMissing("invalid UID in the store's index")
        return f"{self.base_url}/studies/{uids[0]}/series/{uids[1]}/instances/{uids[2]}"

    def _fetch(self, key: str, uids: UIDs) -> bytes:
        """WADO-RS: the instance as the archive keeps it (transfer-syntax=*)."""
        if self._pending():
            self._send_pending()  # this thread's own files first
        response = self._request(
            "GET", self._instance_url(uids),
            headers={"Accept": f"{_DICOM}; transfer-syntax=*"})
        if response.status_code in (404, 410):
            raise StoredFileMissing(key)
        if response.status_code != 200:
            raise ArchiveError(f"archive could not return the instance "
                               f"(HTTP {response.status_code})")
        parts = multipart_parts(response.headers.get("Content-Type", ""), response.content)
        if not parts:
            raise StoredFileMissing(key)
        return parts[0]

    def _qido(self, path: str, tag: str, **params) -> Iterator[str]:
        offset, limit = 0, 1000
        while True:
            response = self._request("GET", self.base_url + path,
                                     params={**params, "offset": offset, "limit": limit},
                                     headers={"Accept": "application/dicom+json"})
            if response.status_code == 204:
                return
            if response.status_code != 200:
                raise ArchiveError(f"archive query failed (HTTP {response.status_code})")
            rows = response.json()
            for row in rows:
                value = (row.get(tag) or {}).get("Value") or []
                if value:
                    yield str(value[0])
            if len(rows) < limit:
                return
            offset += limit

    def _qido_instances(self, study_uid: str) -> Iterator[UIDs]:
        response = self._request(
            "GET", f"{self.base_url}/studies/{study_uid}/instances",
            params={"includefield": "0020000E"}, headers={"Accept": "application/dicom+json"})
        if response.status_code == 204:
            return
        if response.status_code != 200:
            raise ArchiveError(f"archive query failed (HTTP {response.status_code})")
        for row in response.json():
            series = ((row.get("0020000E") or {}).get("Value") or [""])[0]
            sop = ((row.get("00080018") or {}).get("Value") or [""])[0]
            yield study_uid, str(series), str(sop)

    def _orthanc_delete(self, sop_uid: str) -> None:
        """Orthanc-specific: find the instance by its SOP Instance UID and delete it."""
        parts = urlsplit(self.base_url)
        origin = f"{parts.scheme}://{parts.netloc}"
        found = self._request("POST", origin + "/tools/lookup", data=sop_uid)
        if found.status_code != 200:
            raise ArchiveError(f"Orthanc lookup failed (HTTP {found.status_code})")
        for entry in found.json():
            if entry.get("Type") == "Instance":
                gone = self._request("DELETE", f"{origin}/instances/{entry['ID']}")
                if gone.status_code not in (200, 404):
                    raise ArchiveError(f"Orthanc delete failed (HTTP {gone.status_code})")


def file_uids(data: bytes) -> UIDs:
    """Return (study, series, SOP instance) UIDs from a Part 10 file's header."""
    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True,
                             specific_tags=["StudyInstanceUID", "SeriesInstanceUID",
                                            "SOPInstanceUID"])
    except Exception as exc:  # noqa: BLE001 - any damage means: not a file to archive
        raise DicomRejected(f"unreadable DICOM file ({type(exc).__name__})") from exc
    uids = tuple(str(ds.get(name, "")).strip() for name in
                 ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"))
    if not all(_UID_RE.fullmatch(u) and len(u) <= 64 for u in uids):
        raise DicomRejected("the file lacks a valid Study, Series or SOP Instance UID")
    return uids  # type: ignore[return-value]


def multipart_parts(content_type: str, body: bytes) -> list[bytes]:
    """Split a multipart/related body into its parts' bodies."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise ArchiveError("archive answered without a multipart boundary")
    delimiter = b"--" + match.group(1).encode("ascii")
    parts = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, rest = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        parts.append(rest[:-2] if rest.endswith(b"\r\n") else rest)
    return parts


def _check_stow_answer(response: requests.Response) -> None:
    """Refuse a STOW answer that lists the instance as failed (Failed SOP Sequence)."""
    try:
        answer = response.json()
    except ValueError:
        return
    if isinstance(answer, dict) and (answer.get("00081198") or {}).get("Value"):
        raise ArchiveError("archive refused the instance (Failed SOP Sequence)")
