"""Read a request body of known length straight from gunicorn's socket into our buffer.

Under gunicorn, `wsgi.input` is its `Body` over a `LengthReader` over a `SocketUnreader`,
which werkzeug hands over as it is (gunicorn sets `wsgi.input_terminated`) or in a
`LimitedStream` of MAX_CONTENT_LENGTH. A 1 MB read through that chain copies the
bytes about six times after `recv()` (the unreader's and the body's BytesIO buffers, their
`getvalue()` and slices, the copy into the caller's buffer): about 0.5 ms of CPU per
512 KB instance of a STOW-RS body, a fifth of the request's cost
(`python benchmarks/vs_orthanc.py --only stow`). `direct_stream()` returns an object whose
`readinto` first hands out what gunicorn already buffered (taken from its buffers, never
by asking it to read: it would read ahead again), then reads with
`socket.recv_into()` into the caller's buffer, never past the body's end, keeping
gunicorn's remaining length right (a keep-alive connection finds the next request where
it starts). A body that ends before its Content-Length raises werkzeug's
`ClientDisconnected` (400), as werkzeug's own stream does. Anything else (another server,
a chunked body, a stream already read from) gets `request.stream` unchanged.
"""

from __future__ import annotations

import io
import os
from typing import Any

from werkzeug.exceptions import ClientDisconnected
from werkzeug.wsgi import LimitedStream

try:  # gunicorn is the production server; tests and the CLI run without it
    from gunicorn.http.body import Body, LengthReader
    from gunicorn.http.unreader import SocketUnreader
except ImportError:  # pragma: no cover - gunicorn is a dependency
    Body = LengthReader = SocketUnreader = None


def direct_stream(request) -> Any:
    """Return a stream of request's body with a copy-free `readinto` where possible."""
    stream = request.stream  # werkzeug's checks first (MAX_CONTENT_LENGTH: 413)
    raw = request.environ.get("wsgi.input")
    length = request.content_length
    if Body is None or type(raw) is not Body or length is None:
        return stream
    reader = raw.reader
    if type(reader) is not LengthReader or type(reader.unreader) is not SocketUnreader:
        return stream
    if reader.length != length:
        return stream  # something read from it already
    # gunicorn says it ends the stream itself (wsgi.input_terminated): werkzeug gives its
    # Body as it is, or within MAX_CONTENT_LENGTH (checked against Content-Length above).
    if stream is not raw and not (type(stream) is LimitedStream and stream._stream is raw
                                  and stream._pos == 0 and stream.limit >= length):
        return stream
    return SocketBody(raw)


class SocketBody:
    """The rest of a gunicorn `Body` of known length, read into the caller's buffers."""

    def __init__(self, body) -> None:
        self._body = body
        self._reader = body.reader
        self._sock = body.reader.unreader.sock

    def readinto(self, view) -> int:
        """Fill view with the next bytes of the body; 0 at its end."""
        if not len(view):
            return 0
        # Bytes gunicorn read ahead (with the headers) come first, copied once; gunicorn is
        # never asked to read, or it would read ahead again (up to 1 MB a time, since
        # gunicorn 23) and every later read would go through its buffers.
        n = _take(self._body, view, None)  # already counted off the body's length
        if not n and self._reader.length > 0:
            n = _take(self._reader.unreader, view, self._reader.length)
            self._reader.length -= n
        if n:
            return n
        remaining = self._reader.length
        if remaining <= 0:
            return 0
        try:
            n = self._sock.recv_into(view, min(len(view), remaining))
        except OSError:
            self._failed()
        if not n:
            self._failed()
        self._reader.length -= n
        return n

    def read(self, size: int = -1) -> bytes:
        """Read up to size bytes (all that is left when negative)."""
        size = self._reader.length if size < 0 else size
        buf = bytearray(max(0, size))
        n = self.readinto(memoryview(buf)) if size else 0
        return bytes(buf[:n])

    def _failed(self):
        self._body.failed = True  # gunicorn must not reuse the connection
        raise ClientDisconnected()


def _take(holder, view, limit: int | None) -> int:
    """Move up to len(view) (and limit) bytes from the front of holder's BytesIO buffer
    (gunicorn's `buf`) into view; what is left stays there, positioned at its end as
    gunicorn expects. Return how many bytes were moved."""
    buf: io.BytesIO = holder.buf
    size = buf.seek(0, os.SEEK_END)
    if not size:
        return 0
    n = min(len(view), size, size if limit is None else limit)
    with buf.getbuffer() as held:
        view[:n] = held[:n]
        rest = bytes(held[n:])
    holder.buf = io.BytesIO()
    holder.buf.write(rest)
    return n
