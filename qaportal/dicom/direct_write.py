"""Write a received file's bulk around the page cache (Linux O_DIRECT), its ends through it.

A STOW-RS or upload body is written into a private file as it arrives, and that file is
kept: every buffered write of its 512 KB takes fresh page-cache pages. On a virtual machine
that hands free memory back to its host (virtio-balloon free page reporting), touching those
pages costs the writing process 1-1.5 ms of CPU per 512 KB instead of 0.15 ms
(`python benchmarks/page_cache_write.py`), the largest single cost of a STOW-RS request
there. Written with O_DIRECT, the bytes go from one reused, aligned buffer to the disk:
about 0.2 ms of CPU, wherever the memory stands, and the stored images do not push other
files out of the page cache.

What is read right after the write stays in the page cache: the first `HEAD` bytes (the
header parse reads the first 16 KB, and rarely more) and the last partial block. A
filesystem or device that refuses O_DIRECT (tmpfs before Linux 6.6, an unaligned device)
gets ordinary writes, decided per file at its first refusal. Durability is unchanged: the
store still makes the files durable (syncfs, fsync) before any row refers to them.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import threading

ALIGN = 4096  # a multiple of every device's logical block size, and of the page size
HEAD = 64 * 1024  # through the page cache: the header parse's first read (quick_header)
STAGE = 1024 * 1024  # the aligned buffer the bulk is copied into, per thread

_local = threading.local()


def _stage() -> mmap.mmap:
    """Return this thread's aligned staging buffer (anonymous mmap: page aligned), made
    once and reused, so that its pages are touched once. It holds bytes only during one
    `write()`: several files may be written in turns by one thread."""
    stage = getattr(_local, "stage", None)
    if stage is None:
        stage = _local.stage = mmap.mmap(-1, STAGE)
    return stage


def supported() -> bool:
    """Tell whether this platform has O_DIRECT (Linux, some BSDs)."""
    return hasattr(os, "O_DIRECT")


class DirectWriter:
    """Append to the file open as fd with its bulk written by O_DIRECT.

    The descriptor's O_DIRECT flag is set (fcntl) for the whole blocks and cleared for
    the rest; `close()` writes the last partial block and leaves fd open without it (the
    caller's). Writes go at explicit offsets (pwrite): fd's own position is not moved.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.offset = 0  # where the next write to the file goes
        self._rest = b""  # the partial block after offset, not written yet
        self._direct = True  # False once refused, or closed
        self._flags: int | None = None  # fd's status flags, without O_DIRECT

    def write(self, view: memoryview) -> None:
        """Append view's bytes (a memoryview of unsigned bytes)."""
        if self.offset < HEAD and not self._rest:
            n = min(len(view), HEAD - self.offset)
            self._buffered(view[:n])
            view = view[n:]
        if not len(view):
            return
        if not self._direct:
            self._flush_rest()
            self._buffered(view)
            return
        with memoryview(_stage()) as stage:
            held = len(self._rest)
            stage[:held] = self._rest
            while len(view):
                n = min(len(view), STAGE - held)
                stage[held:held + n] = view[:n]
                view = view[n:]
                held += n
                aligned = held - held % ALIGN
                self._write_blocks(stage[:aligned])
                stage[:held - aligned] = stage[aligned:held]
                held -= aligned
            self._rest = bytes(stage[:held])

    def close(self) -> None:
        """Write the last partial block (through the page cache)."""
        self._flush_rest()
        self._direct = False

    def _write_blocks(self, blocks: memoryview) -> None:
        """Write whole blocks at offset with O_DIRECT (through the page cache if refused)."""
        done = 0
        if not len(blocks):
            return
        if self._direct and self._set_direct(True):
            try:
                while done < len(blocks):
                    n = os.pwrite(self.fd, blocks[done:], self.offset + done)
                    done += max(n, 0)
                    if n <= 0 or n % ALIGN:
                        break
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                self._direct = False  # refused: ordinary writes for the rest of the file
            finally:
                self._set_direct(False)
        self.offset += done
        if done < len(blocks):
            self._buffered(blocks[done:])

    def _set_direct(self, on: bool) -> bool:
        """Set or clear O_DIRECT on the descriptor (Linux allows it on an open file);
        False when the filesystem refuses it (then never asked again)."""
        try:
            if self._flags is None:
                self._flags = fcntl.fcntl(self.fd, fcntl.F_GETFL) & ~os.O_DIRECT
            fcntl.fcntl(self.fd, fcntl.F_SETFL, self._flags | os.O_DIRECT if on else self._flags)
        except OSError:
            self._direct = False
            return False
        return True

    def _flush_rest(self) -> None:
        if self._rest:
            rest, self._rest = self._rest, b""
            self._buffered(memoryview(rest))

    def _buffered(self, view: memoryview) -> None:
        """Write view through the page cache at offset (what comes before is written)."""
        pwrite_all(self.fd, view, self.offset)
        self.offset += len(view)


def pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    """Write all of view at offset (a write may take less than it is given)."""
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)
