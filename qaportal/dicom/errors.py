"""Errors raised by the DICOM library."""

from __future__ import annotations


class DicomRejected(Exception):
    """Refuse a DICOM input for a short reason fit to show a user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StoredFileMissing(Exception):
    """Signal that a stored file is absent."""


class StoredFileCorrupt(Exception):
    """Signal that a stored file no longer matches its recorded SHA-256."""
