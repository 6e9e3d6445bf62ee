"""O_DIRECT writes handed to a helper thread, so that the disk's time overlaps the next read.

`DirectWriter` (qaportal.dicom.direct_write) waits for the disk on each O_DIRECT write:
about 0.4-0.7 ms per 512 KB on this project's machine, during which the request's thread
reads nothing from the client. `DeferredWriter` copies the file's bytes into one of a few
aligned buffers (the process's, reused) and queues their write to the process's helper
thread; the request reads on. Only the last partial block goes through the page cache,
written at once: the header parse gets the file's first bytes from memory
(`ReceivedFile.head`). Whoever reads the file must first call `wait()`, which returns once
every write of the file is done (and raises the first that failed): STOW-RS calls it in its
parsing thread before each file's header parse, so everything is written before the store
makes the files durable and before any row refers to them.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import queue
import threading
from collections.abc import Callable

from qaportal.dicom.direct_write import ALIGN, STAGE, pwrite_all

POOL = 4  # aligned buffers of the process's helper: how far the reads may run ahead


class _Helper:
    """The process's helper: a thread running queued writes, and the free buffers."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.free: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        for _ in range(POOL):
            self.free.put(mmap.mmap(-1, STAGE))
        threading.Thread(target=self._run, daemon=True, name="direct-write").start()

    def _run(self) -> None:
        while True:
            self.jobs.get()()  # each job catches its own errors


_helper_lock = threading.Lock()
_current: _Helper | None = None


def _helper() -> _Helper:
    """Return the process's helper (one for every thread: a server that starts a thread
    per request must not leave a helper behind each), made at first use, again after a
    fork (the child has none of the parent's threads)."""
    global _current
    with _helper_lock:
        if _current is None or _current.pid != os.getpid():
            _current = _Helper()
        return _current


class DeferredWriter:
    """Append to the file open as fd (at path): by O_DIRECT in the helper thread.

    `write()` appends; `close()` writes the last partial block and queues the closing of
    the O_DIRECT descriptor; `wait()` waits for all of it. A filesystem refusing O_DIRECT
    gets plain writes at once.
    """

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.offset = 0  # the bytes appended so far
        self._rest = b""  # the partial block before offset, not written yet
        self._path = path
        self._helper = _helper()
        self._dfd: int | None = None  # None: not opened yet; -1: refused, or closed
        self._done = threading.Event()
        self._done.set()
        self._queued = 0
        self._lock = threading.Lock()
        self._error: BaseException | None = None

    def write(self, view: memoryview) -> None:
        """Append view's bytes (a memoryview of unsigned bytes). No buffer of the pool is
        held between calls: files may be written in turns."""
        if not len(view):
            return
        if not self._open_direct():
            self._write_rest()
            pwrite_all(self.fd, view, self.offset)
            self.offset += len(view)
            return
        free = self._helper.free
        while len(view):
            stage = free.get()  # waits while every buffer is being written
            held = len(self._rest)
            stage[:held] = self._rest
            n = min(len(view), STAGE - held)
            stage[held:held + n] = view[:n]
            view = view[n:]
            start = self.offset - held
            self.offset += n
            held += n
            aligned = held - held % ALIGN
            self._rest = stage[aligned:held]
            if aligned:
                self._queue_blocks(stage, aligned, start)
            else:
                free.put(stage)

    def close(self) -> None:
        """Write the last partial block now; queue the closing of the O_DIRECT descriptor."""
        self._write_rest()
        if self._dfd is not None and self._dfd >= 0:
            dfd, self._dfd = self._dfd, -1
            self._submit(lambda: os.close(dfd))
        self._dfd = -1

    def wait(self) -> None:
        """Return once every queued write of the file is done; raise the first failure."""
        self._done.wait()
        if self._error is not None:
            raise self._error

    def _write_rest(self) -> None:
        if self._rest:
            rest, self._rest = self._rest, b""
            pwrite_all(self.fd, memoryview(rest), self.offset - len(rest))

    def _open_direct(self) -> bool:
        if self._dfd is None:
            try:
                self._dfd = os.open(self._path, os.O_WRONLY | os.O_DIRECT | os.O_CLOEXEC)
            except (OSError, AttributeError):  # refused here, or no O_DIRECT at all
                self._dfd = -1
        return self._dfd >= 0

    def _queue_blocks(self, stage: mmap.mmap, aligned: int, start: int) -> None:
        """Queue the write of stage's first `aligned` bytes at start; then free it."""
        dfd, free = self._dfd, self._helper.free

        def write() -> None:
            try:
                if self._error is None:
                    with memoryview(stage) as whole:
                        _write_blocks(dfd, whole[:aligned], start)
            finally:
                free.put(stage)

        self._submit(write)

    def _submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            self._queued += 1
            self._done.clear()

        def run() -> None:
            try:
                job()
            except BaseException as exc:  # noqa: BLE001 - raised by wait(), in the caller
                if self._error is None:
                    self._error = exc
            finally:
                with self._lock:
                    self._queued -= 1
                    if not self._queued:
                        self._done.set()

        self._helper.jobs.put(run)


def _write_blocks(dfd: int, blocks: memoryview, offset: int) -> None:
    """Write whole blocks with O_DIRECT; what it refuses, through the page cache (the same
    descriptor without O_DIRECT: the caller's own may be closed by now)."""
    done = 0
    try:
        while done < len(blocks):
            n = os.pwrite(dfd, blocks[done:], offset + done)
            if n <= 0 or n % ALIGN:
                done += max(n, 0)
                break
            done += n
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
            raise
    if done < len(blocks):
        fcntl.fcntl(dfd, fcntl.F_SETFL, fcntl.fcntl(dfd, fcntl.F_GETFL) & ~os.O_DIRECT)
        pwrite_all(dfd, blocks[done:], offset + done)
