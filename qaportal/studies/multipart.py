"""Streaming multipart readers: form-data for the upload endpoints, the part walk for all.

It reads the body in large pieces, finds part delimiters with `bytes.find` (no regular
expression over the buffer), and writes each file part straight into a container from a
factory, so a 500-file upload is never held in memory and never copied.
"""

from __future__ import annotations

from collections.abc import Callable
from email.message import Message
from typing import IO, Any

from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

READ_SIZE = 1024 * 1024
MAX_HEADER_BYTES = 16 * 1024


class MultipartError(BadRequest):
    """The body is not well-formed multipart/form-data."""

    description = "The upload is not a well-formed multipart/form-data body."


def _disposition(header_block: bytes) -> tuple[str, str | None, str | None]:
    """Return (field name, filename or None, content type or None) of a part's headers."""
    msg = part_headers(header_block)
    if msg.get_content_disposition() != "form-data":
        raise MultipartError()
    name = msg.get_param("name", header="content-disposition")
    filename = msg.get_filename()
    if name is None:
        raise MultipartError()
    ctype = msg.get("content-type")
    return str(name), (None if filename is None else str(filename)), ctype


class MultipartStream:
    """Walk the parts of any multipart body: header blocks, then bodies copied to a sink.

    `next_part()` returns the next part's raw header block (None at the closing delimiter);
    the caller then consumes its body with `copy_body()` before asking for the next one.

    The body is read into one buffer allocated once per request (`readinto` when the
    stream has it), and the unread bytes are `buffer[pos:end]`: consuming only moves pos,
    and a refill first moves the few unread bytes to the front. So the body is copied once,
    from the stream into the buffer, and each piece of a file part goes from there to its
    sink as a view; no fresh megabyte is allocated (and faulted in) per read.
    """

    def __init__(self, stream: IO[bytes], boundary: bytes, *, max_parts: int | None = 10_000):
        if not boundary or len(boundary) > 200:
            raise self.error()
        self.stream = stream
        self._readinto = getattr(stream, "readinto", None)
        self.delimiter = b"--" + boundary
        self.separator = b"\r\n" + self.delimiter
        self.max_parts = max_parts
        self.read_size = READ_SIZE
        self.buffer = bytearray(self.read_size + MAX_HEADER_BYTES)
        self.pos = 0
        self.end = 0
        self.eof = False
        self.parts = 0
        self.started = False

    def error(self) -> BadRequest:
        """Return the exception a malformed body raises."""
        return MultipartError()

    @property
    def pending(self) -> int:
        """The number of bytes read from the stream and not consumed yet."""
        return self.end - self.pos

    def _fill(self) -> bool:
        """Read the next piece of the body after the unread bytes; return False at its end."""
        if self.eof:
            return False
        buf = self.buffer
        if self.pos:
            kept = self.end - self.pos
            buf[:kept] = buf[self.pos:self.end]  # same size: a move, no reallocation
            self.pos, self.end = 0, kept
        if len(buf) - self.end < self.read_size:
            buf.extend(bytes(self.read_size - (len(buf) - self.end)))
        if self._readinto is not None:
            with memoryview(buf) as view, view[self.end:self.end + self.read_size] as room:
                n = self._readinto(room) or 0
        else:
            data = self.stream.read(self.read_size)
            n = len(data)
            buf[self.end:self.end + n] = data
        if not n:
            self.eof = True
            return False
        self.end += n
        return True

    def _read_until(self, marker: bytes, limit: int) -> bytes:
        """Return the bytes before marker (consuming both), reading at most limit bytes."""
        start = self.pos
        while True:
            found = self.buffer.find(marker, start, self.end)
            if found != -1:
                head = bytes(self.buffer[self.pos:found])
                self.pos = found + len(marker)
                return head
            if self.pending > limit:
                raise self.error()
            start = max(self.pos, self.end - len(marker) + 1)
            start -= self.pos  # _fill moves the unread bytes to the front
            if not self._fill():
                raise self.error()
            start += self.pos

    def _need(self, n: int) -> None:
        while self.pending < n:
            if not self._fill():
                raise self.error()

    def _next_two(self) -> bytes:
        self._need(2)
        return bytes(self.buffer[self.pos:self.pos + 2])

    def copy_body(self, write: Callable[[Any], Any], limit: int | None = None, *,
                  keep: bool = False) -> int:
        """Write the part's body up to the next separator; keep what follows it.

        write() gets a memoryview into the read buffer, valid only during the call (no copy:
        a file's write and a hash's update take it as it is); keep=True gives it bytes it
        may keep instead. Return the body's size; over limit (bytes) the request is refused
        (413).
        """
        sep = self.separator
        written = 0
        while True:
            found = self.buffer.find(sep, self.pos, self.end)
            stop = found if found != -1 else max(self.pos, self.end - len(sep) + 1)
            if stop > self.pos:
                written += stop - self.pos
                if limit is not None and written > limit:
                    raise RequestEntityTooLarge()
                if keep:
                    write(bytes(self.buffer[self.pos:stop]))
                else:
                    with memoryview(self.buffer) as view, view[self.pos:stop] as piece:
                        write(piece)
                self.pos = stop
            if found != -1:
                self.pos += len(sep)
                return written
            if not self._fill():
                raise self.error()

    def next_part(self) -> bytes | None:
        """Return the next part's header block, or None after the closing delimiter."""
        if not self.started:
            self._read_until(self.delimiter, MAX_HEADER_BYTES)  # skip any preamble
            self.started = True
        two = self._next_two()
        if two == b"--":
            return None  # the closing delimiter; an epilogue is ignored
        if two != b"\r\n":
            raise self.error()
        self.pos += 2
        self.parts += 1
        if self.max_parts is not None and self.parts > self.max_parts:
            raise RequestEntityTooLarge()
        if self._next_two() == b"\r\n":  # a part without headers
            self.pos += 2
            return b""
        return self._read_until(b"\r\n\r\n", MAX_HEADER_BYTES)


def part_headers(header_block: bytes) -> Message:
    """Return a part's header block as a Message (names case-insensitive)."""
    msg = Message()
    for line in header_block.decode("utf-8", "replace").split("\r\n"):
        if ":" in line:
            key, value = line.split(":", 1)
            msg[key.strip()] = value.strip()
    return msg


class MultipartReader(MultipartStream):
    """Split a multipart/form-data body into fields (kept in memory, bounded) and files
    (streamed)."""

    def __init__(self, stream: IO[bytes], boundary: bytes, *,
                 make_file: Callable[[str, str | None], Any],
                 max_field_bytes: int = 1024 * 1024, max_parts: int | None = 10_000):
        super().__init__(stream, boundary, max_parts=max_parts)
        self.make_file = make_file
        self.max_field_bytes = max_field_bytes

    def parse(self) -> tuple[list[tuple[str, str]], list[tuple[str, str, Any]]]:
        """Return ([(name, value)], [(name, filename, container)]) in body order."""
        fields: list[tuple[str, str]] = []
        files: list[tuple[str, str, Any]] = []
        while (block := self.next_part()) is not None:
            name, filename, _ = _disposition(block)
            if filename is None:
                chunks: list[bytes] = []
                self.copy_body(chunks.append, self.max_field_bytes, keep=True)
                fields.append((name, b"".join(chunks).decode("utf-8", "replace")))
            else:
                container = self.make_file(name, filename)
                self.copy_body(container.write, None)
                files.append((name, filename, container))
        return fields, files
