"""Verification records: a file is hashed once per state; records that were forged,
copied, expired or taken while the file was still changing are not trusted."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qaportal.dicom import FilesystemStore, StoredFileCorrupt, StoredFileMissing, new_key
from qaportal.dicom.verified import RECORDS_FILE, VerifiedFiles

SECRET = b"test secret"


@pytest.fixture
def store(tmp_path: Path) -> FilesystemStore:
    return FilesystemStore(tmp_path / "images")


def _stored(store: FilesystemStore, data: bytes) -> tuple[str, str]:
    """Store data; return its key and SHA-256."""
    key = new_key()
    src = store.root / f"src-{key}"
    src.write_bytes(data)
    stored = store.put(key, src)
    src.unlink()
    return key, stored.sha256


def _verifier(store: FilesystemStore, tmp_path: Path, **kw) -> VerifiedFiles:
    kw.setdefault("settle_s", 0.2)
    return VerifiedFiles(store, tmp_path / "verified", SECRET, **kw)


@contextlib.contextmanager
def _records(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """The shared records' database, as anyone who can write to the folder could open it."""
    db = sqlite3.connect(tmp_path / "verified" / RECORDS_FILE, isolation_level=None)
    try:
        yield db
    finally:
        db.close()


def _settle() -> None:
    time.sleep(0.25)


def test_read_splits_and_hashes_once_per_process_and_across_objects(store, tmp_path):
    data = os.urandom(1000)
    key, sha = _stored(store, data)
    _settle()
    one = _verifier(store, tmp_path)
    assert one.read(key, sha, 132) == (data[:132], data[132:])
    assert one.read_bytes(key, sha) == data
    assert one.checked_path(key, sha) == store.path(key)
    assert one.hashed == 1
    other = _verifier(store, tmp_path)  # another worker: same folder and secret
    assert other.read_bytes(key, sha) == data and other.hashed == 0


def test_a_missing_or_changed_file_is_refused(store, tmp_path):
    key, sha = _stored(store, b"x" * 500)
    _settle()
    verified = _verifier(store, tmp_path)
    verified.read(key, sha)
    path = store.path(key)
    st = path.stat()
    path.write_bytes(b"y" * 500)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and mtime
    with pytest.raises(StoredFileCorrupt):
        verified.read(key, sha)
    with pytest.raises(StoredFileCorrupt):
        _verifier(store, tmp_path).checked_path(key, sha)
    path.unlink()
    with pytest.raises(StoredFileMissing):
        verified.read(key, sha)


def test_a_record_for_another_file_or_unreadable_is_not_trusted(store, tmp_path):
    key_a, sha_a = _stored(store, b"a" * 300)
    key_b, sha_b = _stored(store, b"b" * 300)
    _settle()
    fresh = _verifier(store, tmp_path)
    _verifier(store, tmp_path).read(key_b, sha_b)  # a good record for b
    with _records(tmp_path) as db:  # b's record put in a's place
        db.execute("INSERT OR REPLACE INTO verified SELECT ?, at, mac FROM verified "
                   "WHERE key = ?", (key_a, key_b))
    fresh.read(key_a, sha_a)
    assert fresh.hashed == 1
    with _records(tmp_path) as db:
        db.execute("UPDATE verified SET mac = 'garbage' WHERE key = ?", (key_a,))
    broken = _verifier(store, tmp_path)
    broken.read(key_a, sha_a)
    assert broken.hashed == 1


def test_a_forged_record_is_hashed_again(store, tmp_path):
    key, sha = _stored(store, b"c" * 300)
    _settle()
    VerifiedFiles(store, tmp_path / "verified", b"another secret", settle_s=0.2).read(key, sha)
    checker = _verifier(store, tmp_path)
    checker.read(key, sha)
    assert checker.hashed == 1


def test_records_expire(store, tmp_path):
    key, sha = _stored(store, b"d" * 300)
    _settle()
    verified = _verifier(store, tmp_path, max_age_s=0.1)
    verified.read(key, sha)
    verified.read(key, sha)
    assert verified.hashed == 1
    time.sleep(0.15)
    verified.read(key, sha)
    assert verified.hashed == 2
    other = _verifier(store, tmp_path, max_age_s=0.1)
    other.read(key, sha)  # the record was just written again
    assert other.hashed == 0


def test_a_file_changed_just_before_its_check_is_not_remembered(store, tmp_path):
    key, sha = _stored(store, b"e" * 300)
    verified = _verifier(store, tmp_path, settle_s=5.0)
    verified.read(key, sha)
    verified.read(key, sha)
    assert verified.hashed == 2  # its times may not yet tell a second write from the first
    with _records(tmp_path) as db:
        assert db.execute("SELECT count(*) FROM verified").fetchone() == (0,)


def test_a_shared_record_needs_a_secret(store, tmp_path):
    with pytest.raises(ValueError):
        VerifiedFiles(store, tmp_path / "verified", b"")


def test_records_made_in_a_batch_are_written_when_it_ends(store, tmp_path):
    files = [_stored(store, os.urandom(200)) for _ in range(3)]
    _settle()
    verified = _verifier(store, tmp_path)
    with verified.batch():
        for key, sha in files:
            verified.read(key, sha)
        assert _verifier(store, tmp_path).known(files[0][0], files[0][1],
                                                _state_of(store, files[0][0])) is False
    other = _verifier(store, tmp_path)
    for key, sha in files:
        other.read(key, sha)
    assert other.hashed == 0 and verified.hashed == 3


def _state_of(store: FilesystemStore, key: str) -> tuple:
    st = store.path(key).stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def test_a_batch_reads_the_records_of_its_keys_at_once_and_still_checks_them(store, tmp_path):
    files = [_stored(store, os.urandom(200)) for _ in range(3)]
    _settle()
    first = _verifier(store, tmp_path)
    for key, sha in files:
        first.read(key, sha)
    path = store.path(files[1][0])
    st = path.stat()
    path.write_bytes(os.urandom(200))  # changed after its record was made
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    other = _verifier(store, tmp_path)
    with other.batch(key for key, _ in files):
        other.read(*files[0])
        with pytest.raises(StoredFileCorrupt):
            other.read(*files[1])
        other.read(*files[2])
    assert other.hashed == 1
