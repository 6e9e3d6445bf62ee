"""Write a data set received by C-STORE as a DICOM file, its bytes untouched.

A C-STORE carries the data set alone, encoded in the transfer syntax of its presentation
context. The file gets the 128-byte preamble, "DICM" and a File Meta Information group
built from the request (SOP Class and Instance UIDs, the context's transfer syntax, the
sender's AE title), then the data set exactly as it arrived: nothing is decoded here, the
ingest reads and checks the file as it reads an upload.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
from pathlib import Path

# The portal's implementation identity in the files it writes (a UUID-derived 2.25 root).
IMPLEMENTATION_CLASS_UID = "2.25.208271739127395036384431720245911634019"
IMPLEMENTATION_VERSION = "QAPORTAL_1"


def _element(group: int, elem: int, vr: bytes, value: bytes) -> bytes:
    """Encode one explicit VR little endian element (values here are short)."""
    if vr == b"OB":
        return struct.pack("<HH2sHI", group, elem, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr, len(value)) + value


def _ui(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


def _ae(value: str) -> bytes:
    raw = value.strip().encode("ascii", "replace")[:16]
    return raw + b" " if len(raw) % 2 else raw


def file_meta(sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str,
              source_ae: str = "") -> bytes:
    """Return the preamble, prefix and File Meta Information group of a received instance."""
    body = b"".join((
        _element(0x0002, 0x0001, b"OB", b"\x00\x01"),
        _element(0x0002, 0x0002, b"UI", _ui(sop_class_uid)),
        _element(0x0002, 0x0003, b"UI", _ui(sop_instance_uid)),
        _element(0x0002, 0x0010, b"UI", _ui(transfer_syntax_uid)),
        _element(0x0002, 0x0012, b"UI", _ui(IMPLEMENTATION_CLASS_UID)),
        _element(0x0002, 0x0013, b"SH", IMPLEMENTATION_VERSION.encode("ascii")),
        _element(0x0002, 0x0016, b"AE", _ae(source_ae)) if source_ae.strip() else b"",
    ))
    length = _element(0x0002, 0x0000, b"UL", struct.pack("<I", len(body)))
    return b"\x00" * 128 + b"DICM" + length + body


def write_received(folder: Path, meta: bytes, data_set: bytes) -> tuple[Path, str]:
    """Write meta + data set to a new private file in folder; return its path and SHA-256."""
    digest = hashlib.sha256(meta)
    digest.update(data_set)
    fd, name = tempfile.mkstemp(prefix="cstore-", suffix=".dcm", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(meta)
            out.write(data_set)
    except BaseException:
        os.unlink(name)
        raise
    return Path(name), digest.hexdigest()
