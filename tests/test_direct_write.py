"""Received files written around the page cache (qaportal.dicom.direct_write), on the real
filesystem of the test's tmp_path, and on a ramfs (which refuses O_DIRECT) where one can be
mounted."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import mmap
import os
import random
import subprocess
import threading
import time
from pathlib import Path

import pytest

from qaportal.dicom import direct_write
from qaportal.dicom.direct_deferred import POOL
from qaportal.dicom.direct_write import ALIGN, HEAD, STAGE
from qaportal.studies.receive import KEEP_HEAD, ReceivedFile

SIZES = [0, 1, ALIGN - 1, HEAD - 1, HEAD, HEAD + 1, HEAD + ALIGN, HEAD + 3 * ALIGN + 5,
         526_038, 3 * 1024 * 1024 + 7]


def _pieces(data: bytes, rng: random.Random):
    """Cut data as the multipart reader does: pieces of any size, some over 1 MB."""
    at = 0
    while at < len(data):
        n = rng.choice([1, 7, 4096, 65_535, 300_000, 1024 * 1024, 1_500_000])
        yield data[at:at + n]
        at += n


def _received(folder: Path, data: bytes, seed: int, deferred: bool = False) -> ReceivedFile:
    rng = random.Random(seed)
    received = ReceivedFile(folder, direct=True, deferred=deferred)
    for piece in _pieces(data, rng):
        # The reader hands over views into its buffer, valid only during the call.
        buffer = bytearray(piece)
        with memoryview(buffer) as view:
            received.write(view)
        buffer[:] = b"\xff" * len(buffer)
    received.finish()
    received.wait_written()
    return received


@pytest.mark.parametrize("deferred", [False, True], ids=["in-thread", "deferred"])
@pytest.mark.parametrize("size", SIZES)
def test_written_file_and_hash_are_exactly_the_bytes_received(tmp_path, size, deferred):
    data = os.urandom(size)
    received = _received(tmp_path, data, seed=size, deferred=deferred)
    assert received.path.read_bytes() == data
    assert received.sha256 == hashlib.sha256(data).hexdigest()
    assert received.size == size


@pytest.mark.parametrize("deferred", [False, True], ids=["in-thread", "deferred"])
def test_files_written_in_turns_by_one_thread_keep_their_own_bytes(tmp_path, deferred):
    # A browser upload's form parser writes every file of the request before reading any.
    a, b = os.urandom(900_000), os.urandom(700_003)
    fa = ReceivedFile(tmp_path, direct=True, deferred=deferred)
    fb = ReceivedFile(tmp_path, direct=True, deferred=deferred)
    for i in range(0, 900_000, 150_001):
        fa.write(a[i:i + 150_001])
        fb.write(b[i:i + 150_001])
    fa.seek(0)  # what werkzeug does before handing the file over
    assert fa.read() == a
    fb.finish()
    fa.finish()
    fb.wait_written()
    assert fb.path.read_bytes() == b
    assert fa.sha256 == hashlib.sha256(a).hexdigest()
    assert fb.sha256 == hashlib.sha256(b).hexdigest()


def _resident(path: Path) -> list[bool]:
    """Which pages of the file are in the page cache (Linux mincore on a mapping of it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = path.stat().st_size
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vec = (ctypes.c_ubyte * pages)()
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap")
        try:
            if libc.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore")
        finally:
            libc.munmap(addr, size)
    finally:
        os.close(fd)
    return [bool(b & 1) for b in vec]


def _filesystem(path: Path) -> str:
    return subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True,
                          text=True, check=True).stdout.strip()


def test_bulk_goes_around_the_page_cache_and_the_head_stays_in_it(tmp_path):
    if _filesystem(tmp_path) in ("tmpfs", "ramfs"):
        pytest.skip("the test folder is in memory (tmpfs): there is no page cache to bypass")
    data = os.urandom(526_038)
    received = _received(tmp_path, data, seed=1)
    resident = _resident(received.path)
    head_pages = HEAD // mmap.PAGESIZE
    assert all(resident[:head_pages]), "the head is read next by the header parse"
    bulk = resident[head_pages:-1]
    assert sum(bulk) == 0, f"{sum(bulk)} of {len(bulk)} bulk pages went through the cache"
    assert received.path.read_bytes() == data


def test_deferred_file_is_all_around_the_page_cache_its_head_in_memory(tmp_path):
    # STOW-RS: the header parse starts from ReceivedFile.head, nothing is read back.
    if _filesystem(tmp_path) in ("tmpfs", "ramfs"):
        pytest.skip("the test folder is in memory (tmpfs): there is no page cache to bypass")
    data = os.urandom(526_038)
    received = _received(tmp_path, data, seed=2, deferred=True)
    resident = _resident(received.path)
    assert sum(resident[:-1]) == 0, f"{sum(resident[:-1])} pages went through the cache"
    assert received.head == data[:KEEP_HEAD]
    assert received.path.read_bytes() == data


def _mounted(where: Path, fstype: str, *options: str):
    """Mount a filesystem of fstype at where for a test (skip when this process may not)."""
    where.mkdir()
    done = subprocess.run(["mount", "-t", fstype, *options, fstype, str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a {fstype} here (needs root): {done.stderr.strip()[:100]}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


@pytest.fixture
def ramfs(tmp_path):
    """A ramfs (no O_DIRECT) mounted for the test."""
    yield from _mounted(tmp_path / "ramfs", "ramfs")


@pytest.mark.parametrize("deferred", [False, True], ids=["in-thread", "deferred"])
def test_a_filesystem_refusing_direct_io_gets_ordinary_writes(ramfs, deferred):
    data = os.urandom(1_200_001)
    received = _received(ramfs, data, seed=7, deferred=deferred)
    assert received.path.read_bytes() == data
    assert received.sha256 == hashlib.sha256(data).hexdigest()


def test_refused_direct_io_is_asked_once_per_file(ramfs, monkeypatch):
    calls = []
    real = direct_write.fcntl.fcntl

    def counting(fd, cmd, *args):
        calls.append(cmd)
        return real(fd, cmd, *args)

    monkeypatch.setattr(direct_write.fcntl, "fcntl", counting)
    _received(ramfs, os.urandom(3 * 1024 * 1024), seed=3)
    assert calls.count(direct_write.fcntl.F_SETFL) == 1


def test_many_files_open_at_once_never_exhaust_the_deferred_buffers(tmp_path):
    # More files in turns than the helper has buffers (each write larger than a buffer):
    # no buffer may stay taken between writes, or the writing thread would wait forever.
    datas = [os.urandom(2 * STAGE + 4097 + i) for i in range(POOL * 3)]
    files = [ReceivedFile(tmp_path, direct=True, deferred=True) for _ in datas]
    for at in range(0, len(datas[-1]), STAGE + 123):
        for f, data in zip(files, datas, strict=True):
            f.write(data[at:at + STAGE + 123])
    for f in files:
        f.finish()
    for f, data in zip(files, datas, strict=True):
        f.wait_written()
        assert f.path.read_bytes() == data


def test_reading_a_deferred_file_waits_for_its_queued_writes(tmp_path):
    data = os.urandom(8 * STAGE + 5)
    received = ReceivedFile(tmp_path, direct=True, deferred=True)
    received.write(data)
    received.seek(0)  # werkzeug's way to hand a file over: everything is in it by then
    assert received.read() == data


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MB tmpfs (O_DIRECT since Linux 6.6) mounted for the test: a full disk."""
    yield from _mounted(tmp_path / "full", "tmpfs", "-o", "size=1m")


def test_a_deferred_write_that_fails_is_raised_to_the_waiter(small_tmpfs):
    received = ReceivedFile(small_tmpfs, direct=True, deferred=True)
    with pytest.raises(OSError) as failed:
        received.write(os.urandom(3 * STAGE))  # the last partial block may fail at once
        received.finish()
        received.wait_written()
    assert failed.value.errno == errno.ENOSPC
    received.discard()


def test_one_helper_thread_serves_every_writing_thread(tmp_path):
    # A server starting a thread per request must not leave a helper behind each.
    datas = [os.urandom(STAGE * 2 + i) for i in range(6)]
    done: list[ReceivedFile] = []

    def write(data: bytes) -> None:
        received = ReceivedFile(tmp_path, direct=True, deferred=True)
        received.write(data)
        received.finish()
        done.append(received)

    threads = [threading.Thread(target=write, args=(d,)) for d in datas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    helpers = [t for t in threading.enumerate() if t.name == "direct-write"]
    assert len(helpers) == 1
    for received in done:
        received.wait_written()
    assert sorted(r.path.read_bytes() for r in done) == sorted(datas)


def test_store_prefetch_reads_a_file_on_disk_only_into_the_page_cache(tmp_path):
    # A retrieve asks for the next files ahead of sending them (qaportal.dicomweb.wado).
    if _filesystem(tmp_path) in ("tmpfs", "ramfs"):
        pytest.skip("the test folder is in memory (tmpfs): there is no page cache to bypass")
    from qaportal.dicom.store import FilesystemStore, new_key

    store = FilesystemStore(tmp_path / "store")
    data = os.urandom(526_038)
    received = _received(tmp_path, data, seed=4, deferred=True)
    key = new_key()
    store.adopt(key, received.path, sha256=received.sha256)
    assert sum(_resident(store.path(key))[:-1]) == 0
    store.prefetch([key, new_key()])  # the second is not there: skipped
    deadline = time.monotonic() + 10
    while not all(_resident(store.path(key))) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(_resident(store.path(key)))
    assert store.path(key).read_bytes() == data
