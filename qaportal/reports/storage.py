"""Keep exported PDFs under instance/exports/, written atomically, checked on read."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from flask import current_app

KEY_RE = re.compile(r"\d{4}/\d{2}/QAP-[A-Z2-7]{16}\.pdf")


class ExportFileError(RuntimeError):
    """A stored export is missing or no longer matches its recorded SHA-256."""


def _path(key: str) -> Path:
    if not KEY_RE.fullmatch(key):
        raise ValueError("invalid export key")
    return Path(current_app.config["EXPORT_ROOT"]) / key


def write(key: str, data: bytes) -> None:
    """Store data under key: temporary file, fsync, rename, fsync the folder."""
    path = _path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pdf")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_verified(key: str, sha256: str) -> bytes:
    """Return the stored bytes after checking them against the recorded SHA-256."""
    try:
        data = _path(key).read_bytes()
    except FileNotFoundError:
        raise ExportFileError(f"stored export {key} is missing") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ExportFileError(f"stored export {key} does not match its recorded SHA-256")
    return data


def remove(key: str) -> None:
    """Delete a stored export (used only when its database record could not be saved)."""
    _path(key).unlink(missing_ok=True)
