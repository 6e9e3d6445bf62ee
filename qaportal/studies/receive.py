"""Receive uploaded files straight into named temporary files, hashing them as they arrive.

Werkzeug writes each file part of a multipart body into a container from the request's
stream factory (an anonymous temporary file by default, which the upload view then had to
copy out, and the store copy again). For the upload endpoints, `UploadRequest` gives it a
`ReceivedFile` instead: a private file in UPLOAD_TMP (the instance folder, on the image
store's filesystem), hashed with SHA-256 while it is written, so ingest gets a path and a
hash, and the store can take the file over with a rename. Files not taken over are removed
when the request closes, whatever happened.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO

from flask import Request, current_app
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser

from qaportal.dicom.direct_deferred import DeferredWriter
from qaportal.dicom.direct_write import DirectWriter
from qaportal.dicom.direct_write import supported as direct_supported
from qaportal.dicom.store import start_writeback
from qaportal.studies.multipart import MultipartReader
from qaportal.studies.storage import image_store

# The first bytes of a file written with O_DIRECT kept in memory for its header parse: the
# parse's first read (qaportal.dicom.quick_header), enough for nearly every header.
KEEP_HEAD = 16 * 1024

# Endpoints whose file parts are received into named temporary files.
RECEIVING_ENDPOINTS = frozenset({"studies.batch_files", "studies.upload"})


class ReceivedFile:
    """A private named temporary file that hashes what is written to it, in order."""

    def __init__(self, folder: str | os.PathLike[str], *, writeback: bool = False,
                 direct: bool = False, deferred: bool = False) -> None:
        # writeback: the file is to be taken over by the store and made durable, so its
        # writing to disk starts when it is finished (qaportal.dicom.store.start_writeback).
        # direct: its bulk is appended with O_DIRECT (qaportal.dicom.direct_write) until
        # anything but an append (a read, a seek) asks for the file as it is; deferred: by
        # a helper thread (qaportal.dicom.direct_deferred), and whoever reads the file past
        # its head after finish() calls wait_written() first.
        self._writeback = writeback
        try:
            fd, name = tempfile.mkstemp(prefix="recv-", dir=folder)
        except FileNotFoundError:  # the first file: make the folder (a mkdir each costs)
            Path(folder).mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix="recv-", dir=folder)
        self.path = Path(name)
        # Unbuffered: the multipart readers hand over large pieces, written as they come
        # (a buffer would only add a copy).
        self._fh: IO[bytes] = os.fdopen(fd, "w+b", buffering=0)
        self._direct: DirectWriter | DeferredWriter | None = None
        if direct and direct_supported():
            self._direct = DeferredWriter(fd, name) if deferred else DirectWriter(fd)
        self._pending: DeferredWriter | None = None  # closed, its writes maybe still queued
        self._digest = hashlib.sha256()
        self._hash_valid = True
        self._written = 0
        self._head: list[bytes] = []  # the first KEEP_HEAD bytes written

    def write(self, data: bytes) -> int:
        """Append data, hashing it; a write anywhere but the end voids the hash."""
        if self._direct is not None:
            view = memoryview(data).cast("B")
            if self._written < KEEP_HEAD:
                self._head.append(bytes(view[:KEEP_HEAD - self._written]))
            self._direct.write(view)
            self._digest.update(view)
            self._written += len(view)
            return len(view)
        if self._fh.tell() != self._written:
            self._hash_valid = False
        view = memoryview(data).cast("B")
        total = len(view)
        done = 0
        while done < total:  # a raw write may take less than it was given
            done += self._fh.write(view[done:]) or 0
        self._digest.update(view)
        self._written += total
        return total

    @property
    def head(self) -> bytes | None:
        """Return the file's first bytes (up to KEEP_HEAD) when it was written with
        O_DIRECT, in order: the header parse starts from them instead of a disk read."""
        return b"".join(self._head) if self._head and self._hash_valid else None

    @property
    def sha256(self) -> str | None:
        """Return the SHA-256 of the bytes written, or None if it cannot be trusted."""
        return self._digest.hexdigest() if self._hash_valid else None

    @property
    def size(self) -> int:
        return self._written

    def _settle(self, wait: bool = True) -> None:
        """End the O_DIRECT appends: write what is staged (and, with wait, whatever is still
        queued); the file's position is its end."""
        if self._direct is not None:
            direct, self._direct = self._direct, None
            direct.close()
            self._fh.seek(self._written)
            if isinstance(direct, DeferredWriter):
                self._pending = direct
        if wait:
            self.wait_written()

    def wait_written(self) -> None:
        """Return once every byte written is in the file (raise a write that failed)."""
        if self._pending is not None:
            self._pending.wait()

    def finish(self) -> None:
        """Flush and close the file, keeping it on disk for ingest to read or move."""
        if not self._fh.closed:
            self._settle(wait=False)
            # Written by O_DIRECT in a helper: only its last partial block is in the page
            # cache, which the store's one sync of the request writes with the others.
            if self._writeback and self._pending is None:
                start_writeback(self._fh.fileno())
            self._fh.close()

    def discard(self) -> None:
        """Close and remove the file unless it was moved away (into the store)."""
        self.finish()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    # The file-object methods werkzeug's FileStorage uses.
    def read(self, n: int = -1) -> bytes:
        self._settle()
        return self._fh.read(n)

    def readline(self, size: int = -1) -> bytes:
        self._settle()
        return self._fh.readline(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._settle()
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        self._settle()
        return self._fh.tell()

    def flush(self) -> None:
        self._settle()
        self._fh.flush()

    def close(self) -> None:
        self.finish()

    @property
    def closed(self) -> bool:
        return self._fh.closed

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True


class _FormDataParser(FormDataParser):
    """Werkzeug's form parser, with our streaming reader for multipart bodies."""

    def __init__(self, *args, make_file, **kwargs):
        super().__init__(*args, **kwargs)
        self._make_file = make_file

    def parse(self, stream, mimetype, content_length, options=None):
        if mimetype != "multipart/form-data":
            return super().parse(stream, mimetype, content_length, options)
        if self.max_content_length is not None and content_length is not None \
                and content_length > self.max_content_length:
            raise RequestEntityTooLarge()
        boundary = (options or {}).get("boundary", "").encode("latin-1")
        reader = MultipartReader(stream, boundary, make_file=self._make_file,
                                 max_field_bytes=self.max_form_memory_size or 1024 * 1024,
                                 max_parts=self.max_form_parts)
        fields, files = reader.parse()
        storages = []
        for name, filename, container in files:
            container.seek(0)
            storages.append((name, FileStorage(container, filename, name)))
        return stream, self.cls(fields), self.cls(storages)


class UploadRequest(Request):
    """Flask's request, receiving the upload endpoints' files as `ReceivedFile`s."""

    def make_form_data_parser(self) -> FormDataParser:
        if self.endpoint not in RECEIVING_ENDPOINTS:
            return super().make_form_data_parser()
        return _FormDataParser(
            make_file=self._receive_file,
            stream_factory=self._get_file_stream,
            max_form_memory_size=self.max_form_memory_size,
            max_content_length=self.max_content_length,
            max_form_parts=self.max_form_parts,
            cls=self.parameter_storage_class,
        )

    def _receive_file(self, name: str, filename: str | None) -> ReceivedFile:
        return self.receive_file()

    def receive_file(self, deferred: bool = False) -> ReceivedFile:
        """Return a new ReceivedFile in UPLOAD_TMP, removed at the request's close unless
        the store took it over (used by views that read the body themselves: STOW-RS).
        deferred: its O_DIRECT writes are queued (ReceivedFile.wait_written)."""
        # A store that adopts files renames this one in, then syncs it: start its writeback,
        # and write its bulk around the page cache (it is kept, not read back soon).
        adopts = hasattr(image_store(), "adopt")
        cfg = current_app.config
        received = ReceivedFile(cfg["UPLOAD_TMP"], writeback=adopts,
                                direct=adopts and bool(cfg.get("RECEIVE_DIRECT_IO", True)),
                                deferred=deferred)
        self.__dict__.setdefault("_received_files", []).append(received)
        return received

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None, content_length: int | None = None):
        if filename and self.endpoint in RECEIVING_ENDPOINTS:
            return self.receive_file()
        return super()._get_file_stream(total_content_length, content_type, filename,
                                        content_length)

    def close(self) -> None:
        """Close the request and remove every received file the store did not take."""
        try:
            super().close()
        finally:
            for received in self.__dict__.pop("_received_files", []):
                received.discard()
