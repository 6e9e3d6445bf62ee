"""Store image files under internal keys, durably, with SHA-256 checks on read."""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from .errors import StoredFileCorrupt, StoredFileMissing

# Keys are internal ids chosen by the application (e.g. "3f/a9c2..."), never patient data.
KEY_RE = re.compile(r"[0-9a-f]{2,64}(/[0-9a-f]{2,64}){0,3}")
_CHUNK = 1024 * 1024
PREAMBLE_LENGTH = 128


@dataclass(frozen=True, slots=True)
class StoredFile:
    """Describe a file as stored: its key, SHA-256 (hex) and size in bytes."""

    key: str
    sha256: str
    size: int


@runtime_checkable
class ImageStore(Protocol):
    """Keep image files by key; small enough for a DICOMweb or Orthanc backend to implement.

    A store may also offer adopt(key, path, sha256=None, sync=True), taking over a finished
    local file without copying it (FilesystemStore does); `store_file` uses it when present
    and falls back to put().
    """

    def put(self, key: str, src_path: str | os.PathLike[str] | BinaryIO,
            *, sync: bool = True) -> StoredFile:
        """Store the file at src_path (or a readable stream) under key, replacing any old one.

        With sync=False the file is not yet durable: call sync() with its key before relying
        on it (committing a reference to it), which lets a batch share the cost.
        """
        ...

    def sync(self, keys: Iterable[str]) -> None:
        """Make the files stored under keys with sync=False durable."""
        ...

    def open(self, key: str) -> BinaryIO:
        """Open the stored file for reading."""
        ...

    def read_verified(self, key: str, sha256: str) -> bytes:
        """Return the stored bytes after checking them against the recorded SHA-256."""
        ...

    def exists(self, key: str) -> bool:
        """Tell whether key is stored."""
        ...

    def delete(self, key: str) -> None:
        """Remove key; a missing key is not an error."""
        ...


def validate_key(key: str) -> str:
    """Return key if it is a well-formed internal key, else raise ValueError."""
    if not isinstance(key, str) or not KEY_RE.fullmatch(key):
        raise ValueError("invalid storage key")
    return key


def new_key() -> str:
    """Return a fresh random key (128 bits, hex) suitable for any store."""
    return os.urandom(16).hex()


class FilesystemStore:
    """Store files under a root folder, sharded by key prefix, written atomically."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._root_name = str(self.root)

    def path(self, key: str) -> Path:
        """Return the local path of key (sharded as ab/cd/<key>); for local rendering."""
        return Path(self.file_name(key))

    def file_name(self, key: str) -> str:
        """Return path(key) as a string (cheaper where every file of a study is opened)."""
        flat = validate_key(key).replace("/", "")
        return os.path.join(self._root_name, flat[:2], flat[2:4], flat)

    def put(self, key: str, src_path: str | os.PathLike[str] | BinaryIO,
            *, sync: bool = True) -> StoredFile:
        """Copy src into the store: temp file in the same folder, fsync, rename, fsync folder.

        sync=False skips both fsyncs (the file's writeback only starts); the caller must call
        sync() on the keys before it records them anywhere (one pass over a batch costs far
        less than a fsync per file).
        """
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                with _as_stream(src_path) as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
                out.flush()
                if sync:
                    os.fsync(out.fileno())
                else:
                    start_writeback(out.fileno())
            os.replace(tmp_name, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        if sync:
            _fsync_dir(dest.parent)
        return StoredFile(key=key, sha256=digest.hexdigest(), size=size)

    def adopt(self, key: str, src_path: str | os.PathLike[str], *, sha256: str | None = None,
              sync: bool = True) -> StoredFile:
        """Move a finished file into the store under key (rename: no copy), taking it over.

        src_path must be a private file nobody writes any more (e.g. an upload received into
        a temporary file); sha256, when given, is its hash computed as it was written, else
        the file is read once to hash it. The rename is atomic, so a reader sees the whole
        file or none. On another filesystem the file is copied (put) and src_path removed.
        sync=False as for put().
        """
        dest = self.path(key)
        if sha256 is None:
            sha256 = _file_sha256(src_path)
        size = os.stat(src_path).st_size
        try:
            try:
                os.replace(src_path, dest)
            except FileNotFoundError:  # the shard's first file (a mkdir each would cost)
                if dest.parent.is_dir():
                    raise
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src_path, dest)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            stored = self.put(key, src_path, sync=sync)
            os.unlink(src_path)
            return stored
        if sync:
            fd = os.open(dest, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            _fsync_dir(dest.parent)
        return StoredFile(key=key, sha256=sha256.lower(), size=size)

    def sync(self, keys: Iterable[str]) -> None:
        """Flush the files under keys, and their folders, to disk.

        On Linux one syncfs() of the store's filesystem does it in a single journal commit
        (a fsync per file costs one commit each); elsewhere, or if it fails, fsync each.
        """
        keys = list(keys)
        if not keys or _syncfs(self.root):
            return
        folders = set()
        for key in keys:
            path = self.path(key)
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            folders.add(path.parent)
        for folder in sorted(folders):
            _fsync_dir(folder)

    def open(self, key: str) -> BinaryIO:
        """Open the stored file for reading, or raise StoredFileMissing."""
        try:
            return self.path(key).open("rb")
        except FileNotFoundError as exc:
            raise StoredFileMissing(key) from exc

    def read_verified(self, key: str, sha256: str) -> bytes:
        """Return the stored bytes, raising StoredFileCorrupt if the SHA-256 differs."""
        with self.open(key) as fp:
            data = fp.read()
        if hashlib.sha256(data).hexdigest() != sha256.lower():
            raise StoredFileCorrupt(key)
        return data

    def verify(self, key: str, sha256: str) -> None:
        """Check a stored file against its SHA-256 without holding it in memory."""
        digest = hashlib.sha256()
        with self.open(key) as fp:
            while chunk := fp.read(_CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != sha256.lower():
            raise StoredFileCorrupt(key)

    def iter_keys(self) -> Iterator[str]:
        """Yield the key of every stored file (keys made by new_key(), without slashes)."""
        for path in sorted(self.root.glob("??/??/*")):
            if path.is_file() and KEY_RE.fullmatch(path.name):
                yield path.name

    def stale_temp_files(self, older_than_s: float = 3600.0) -> list[Path]:
        """Return temporary files a crash left behind mid-write."""
        import time

        cutoff = time.time() - older_than_s
        return [p for p in self.root.glob("??/??/.tmp-*") if p.stat().st_mtime < cutoff]

    def prefetch(self, keys: Iterable[str]) -> None:
        """Have the kernel start reading these files into the page cache, without waiting
        (Linux posix_fadvise WILLNEED): a retrieve reads the next files from the disk while
        it sends the current one. Files received with O_DIRECT are on the disk only until
        their first read. A file that is gone is skipped (its reader will say so)."""
        advise = getattr(os, "posix_fadvise", None)
        if advise is None:
            return
        for key in keys:
            try:
                fd = os.open(self.file_name(key), os.O_RDONLY | os.O_CLOEXEC)
            except (OSError, ValueError):
                continue
            try:
                advise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            except OSError:
                pass
            finally:
                os.close(fd)

    def exists(self, key: str) -> bool:
        """Tell whether key is stored."""
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        """Remove key if present."""
        path = self.path(key)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            _fsync_dir(path.parent)


def store_file(store: ImageStore, key: str, src_path: str | os.PathLike[str], *,
               sha256: str | None = None, move: bool = False, sync: bool = True) -> StoredFile:
    """Store a file under key: moved in when move=True and the store can adopt files, else put.

    With move=True src_path is consumed either way (a store without adopt() uploads it,
    then it is removed); sha256 is only trusted by adopt(), put() hashes what it copies.
    """
    adopt = getattr(store, "adopt", None) if move else None
    if adopt is not None:
        return adopt(key, src_path, sha256=sha256, sync=sync)
    stored = store.put(key, src_path, sync=sync)
    if move:
        os.unlink(src_path)
    return stored


def _file_sha256(path: str | os.PathLike[str]) -> str:
    """Return the SHA-256 (hex) of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fp:
        while chunk := fp.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def served_copy(data: bytes) -> bytes:
    """Return DICOM bytes with the 128-byte preamble zeroed (it can hide another file format)."""
    if len(data) >= PREAMBLE_LENGTH + 4 and data[PREAMBLE_LENGTH : PREAMBLE_LENGTH + 4] == b"DICM":
        return bytes(PREAMBLE_LENGTH) + data[PREAMBLE_LENGTH:]
    return data


@contextlib.contextmanager
def _as_stream(src: str | os.PathLike[str] | BinaryIO) -> Iterator[BinaryIO]:
    """Yield a readable binary stream for a path or pass a stream through (not closing it)."""
    if isinstance(src, str | os.PathLike):
        with open(src, "rb") as fp:
            yield fp
    else:
        yield src


def _syncfs(folder: Path) -> bool:
    """Flush the whole filesystem holding folder (Linux syncfs); False when not possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = _libc()
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return False
    try:
        return libc.syncfs(fd) == 0
    finally:
        os.close(fd)


SYNC_FILE_RANGE_WRITE = 2  # linux/fs.h


def start_writeback(fd: int) -> bool:
    """Ask the kernel to start writing an open file's dirty pages to disk now, without
    waiting for them (Linux sync_file_range with SYNC_FILE_RANGE_WRITE), so that the
    sync() that makes a batch durable finds most of it written already: the disk works
    while the next files arrive. Durability still comes from that sync alone. Return
    whether the kernel took the request (False elsewhere, or on any error)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        call = _sync_file_range()
    except (OSError, AttributeError):
        return False
    return call(fd, 0, 0, SYNC_FILE_RANGE_WRITE) == 0


@functools.cache
def _sync_file_range():
    import ctypes

    call = _libc().sync_file_range
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int
    return call


@functools.cache
def _libc():
    """Load the C library (for syncfs, which the os module does not expose)."""
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable by syncing its folder (not possible on every platform)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
