"""File-like readers that let pydicom parse hostile files without reading or inflating too much.

pydicom trusts declared lengths: an element declaring 0xFFFFFFF0 bytes makes it ask the
file for 4 GiB (and quietly keep the 512 bytes that are there), and a deflated data set
is inflated in one `zlib.decompress` call, however large it turns out. Both readers
here answer pydicom's reads, seeks and tells, but never read past the end of the data
and remember when a read asked for more than was left: a truncated file.
"""

from __future__ import annotations

import io
import os
import zlib
from typing import BinaryIO

from .errors import DicomRejected

_CHUNK = 256 * 1024


class BoundedReader:
    """Read a file of known size for pydicom, never past its end."""

    def __init__(self, fp: BinaryIO, size: int) -> None:
        self._fp = fp
        self._size = size
        self.overrun = False  # a read began inside the file and asked for more than was left
        self.name = getattr(fp, "name", None)

    def read(self, n: int | None = -1) -> bytes:
        """Return up to n bytes, clamped to what the file holds."""
        pos = self._fp.tell()
        remaining = max(self._size - pos, 0)
        if n is None or n < 0:
            n = remaining
        elif n > remaining:
            self.overrun = self.overrun or remaining > 0
            n = remaining
        return self._fp.read(n)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move like a file; a move past the end (a skipped value too long) is an overrun."""
        pos = self._fp.seek(offset, whence)
        if pos > self._size:
            self.overrun = True
        return pos

    def tell(self) -> int:
        """Return the position."""
        return self._fp.tell()

    def skip(self, n: int) -> bool:
        """Move n bytes forward; False (and stay) when fewer than n bytes are left."""
        pos = self._fp.tell()
        if pos + n > self._size:
            return False
        self._fp.seek(pos + n)
        return True

    def readable(self) -> bool:  # for io helpers that ask
        return True

    def seekable(self) -> bool:
        return True


class InflatingReader:
    """Inflate a deflated data set while pydicom reads it, refusing it past max_bytes.

    What was inflated stays in memory (pydicom seeks back a little while parsing) until a
    forward seek or `skip` passes its end: then the stream is inflated and discarded up to
    there, so skipping a large value or the pixel data costs CPU but no memory. The
    inflated total is counted as it grows and the file is refused the moment it passes
    max_bytes.
    """

    def __init__(self, raw: BinaryIO, max_bytes: int) -> None:
        self._raw = raw
        self._max = max_bytes
        self._z = zlib.decompressobj(-zlib.MAX_WBITS)
        self._buf = bytearray()
        self._base = 0  # stream offset of _buf[0]
        self._pos = 0
        self._produced = 0
        self._done = False
        self.overrun = False
        self.name = getattr(raw, "name", None)

    def _more(self) -> bytes:
        """Inflate the next piece (at most _CHUNK bytes); b"" at the end of the stream."""
        while not self._done:
            data = self._z.unconsumed_tail or self._raw.read(_CHUNK)
            if data:
                out = self._z.decompress(data, _CHUNK)
                self._done = self._z.eof
            else:
                out = self._z.flush()  # only output of input already consumed: small
                self._done = True
            if out:
                self._produced += len(out)
                if self._produced > self._max:
                    raise DicomRejected(
                        f"deflated data set inflates past the limit of {self._max} bytes")
                return out
        return b""

    def _fill(self, end: int) -> None:
        while self._base + len(self._buf) < end:
            piece = self._more()
            if not piece:
                return
            self._buf += piece

    def read(self, n: int | None = -1) -> bytes:
        """Return up to n inflated bytes (all of the rest, within the limit, for n < 0)."""
        if n is None or n < 0:
            n = self._max + 1  # reading "everything" still stops at the limit
        self._fill(self._pos + n)
        start = self._pos - self._base
        data = bytes(self._buf[start : start + n])
        if 0 < len(data) < n:
            self.overrun = True
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move back within what is kept, or forward (past what is kept: like `skip`)."""
        target = {os.SEEK_SET: offset, os.SEEK_CUR: self._pos + offset}.get(whence)
        if target is None or target < self._base:
            raise io.UnsupportedOperation("cannot seek there in a deflated stream")
        if target <= self._base + len(self._buf):
            self._pos = target
        elif not self.skip(target - self._pos):
            self.overrun = True  # a skipped (deferred) value runs past the end
        return self._pos

    def tell(self) -> int:
        """Return the position in the inflated stream."""
        return self._pos

    def skip(self, n: int) -> bool:
        """Move n bytes forward, inflating and discarding; False at the end of the stream."""
        target = self._pos + n
        end = self._base + len(self._buf)
        if target <= end:
            self._pos = target
            return True
        self._base, self._buf = end, bytearray()
        while self._base < target:
            piece = self._more()
            if not piece:
                self._pos = self._base
                return False
            self._base += len(piece)
            if self._base > target:  # keep what lies past the target
                self._buf = bytearray(piece[len(piece) - (self._base - target):])
                self._base = target
        self._pos = target
        return True

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True
