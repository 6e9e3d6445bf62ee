"""Filesystem image store: atomic writes, SHA-256 verification, key validation."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from qaportal.dicom import (
    FilesystemStore,
    ImageStore,
    StoredFileCorrupt,
    StoredFileMissing,
    new_key,
    served_copy,
)
from qaportal.dicom.store import start_writeback


@pytest.fixture
def store(tmp_path: Path) -> FilesystemStore:
    return FilesystemStore(tmp_path / "images")


def test_round_trip(store: FilesystemStore, ct_small: Path) -> None:
    assert isinstance(store, ImageStore)
    key = new_key()
    stored = store.put(key, ct_small)
    data = ct_small.read_bytes()
    assert stored.sha256 == hashlib.sha256(data).hexdigest() and stored.size == len(data)
    assert store.exists(key)
    assert store.read_verified(key, stored.sha256) == data
    with store.open(key) as fp:
        assert fp.read() == data
    assert store.path(key).relative_to(store.root).parts == (key[:2], key[2:4], key)
    store.verify(key, stored.sha256)


def test_altered_byte_detected(store: FilesystemStore, ct_small: Path) -> None:
    key = new_key()
    stored = store.put(key, ct_small)
    path = store.path(key)
    data = bytearray(path.read_bytes())
    data[5000] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(StoredFileCorrupt):
        store.read_verified(key, stored.sha256)
    with pytest.raises(StoredFileCorrupt):
        store.verify(key, stored.sha256)


def test_missing_and_delete(store: FilesystemStore, ct_small: Path) -> None:
    key = new_key()
    with pytest.raises(StoredFileMissing):
        store.read_verified(key, "0" * 64)
    store.put(key, ct_small)
    store.delete(key)
    store.delete(key)  # idempotent
    assert not store.exists(key)
    with pytest.raises(StoredFileMissing):
        store.open(key)


@pytest.mark.parametrize(
    "key", ["", "../etc/passwd", "ab/../../x", "/abs", "ABCDEF", "ab cd", "a", "ab//cd", "é0"]
)
def test_key_validation(store: FilesystemStore, key: str, ct_small: Path) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        store.put(key, ct_small)


class _FailingStream:
    """A source that breaks after the first chunk, like a dropped upload."""

    def __init__(self) -> None:
        self.calls = 0

    def read(self, n: int = -1) -> bytes:
        self.calls += 1
        if self.calls > 1:
            raise OSError("connection reset")
        return b"x" * 1000


def test_failed_put_leaves_nothing(store: FilesystemStore, ct_small: Path) -> None:
    key = new_key()
    store.put(key, ct_small)
    before = store.path(key).read_bytes()
    with pytest.raises(OSError, match="connection reset"):
        store.put(key, _FailingStream())  # type: ignore[arg-type]
    assert store.path(key).read_bytes() == before  # the old version is intact
    assert sorted(p.name for p in store.path(key).parent.iterdir()) == [key]


def test_served_copy_zeroes_preamble(ct_small: Path) -> None:
    data = bytearray(ct_small.read_bytes())
    data[:128] = b"MZ" + b"\x90" * 126  # something else hiding in the preamble
    served = served_copy(bytes(data))
    assert served[:128] == bytes(128) and served[128:] == bytes(data[128:])
    assert served_copy(b"not dicom") == b"not dicom"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_start_writeback_takes_a_file_and_refuses_a_bad_descriptor(tmp_path: Path) -> None:
    path = tmp_path / "f"
    with open(path, "wb") as fh:
        fh.write(b"x" * 300_000)
        fh.flush()
        assert start_writeback(fh.fileno())
    assert path.read_bytes() == b"x" * 300_000
    with open(path, "rb") as fh:
        fd = fh.fileno()
    assert not start_writeback(fd)  # closed


def test_put_without_sync_then_sync_keeps_the_bytes(store: FilesystemStore,
                                                     ct_small: Path) -> None:
    stored = store.put("ab12cd34", ct_small, sync=False)  # its writeback started
    store.sync([stored.key])
    assert store.read_verified(stored.key, stored.sha256) == ct_small.read_bytes()
