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
    """

    def __init__(self, stream: IO[bytes], boundary: bytes, *, max_parts: int | None = 10_000):
        if not boundary or len(boundary) > 200:
            raise self.error()
        self.stream = stream
        self.delimiter = b"--" + boundary
        self.separator = b"\r\n" + self.delimiter
        self.max_parts = max_parts
        self.buffer = bytearray()
        self.eof = False
        self.parts = 0
        self.started = False

    def error(self) -> BadRequest:
        """Return the exception a malformed body raises."""
        return MultipartError()

    def _fill(self) -> bool:
        """Read the next piece of the body; return False at its end."""
        if self.eof:
            return False
        data = self.stream.read(READ_SIZE)
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def _read_until(self, marker: bytes, limit: int) -> bytes:
        """Return the bytes before marker (consuming both), reading at most limit bytes."""
        start = 0
        while True:
            found = self.buffer.find(marker, start)
            if found != -1:
                head = bytes(self.buffer[:found])
                del self.buffer[:found + len(marker)]
                return head
            if len(self.buffer) > limit:
                raise self.error()
            start = max(0, len(self.buffer) - len(marker) + 1)
            if not self._fill():
                raise self.error()

    def _need(self, n: int) -> None:
        while len(self.buffer) < n:
            if not self._fill():
                raise self.error()

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
            found = self.buffer.find(sep)
            end = found if found != -1 else max(0, len(self.buffer) - len(sep) + 1)
            if end:
                written += end
                if limit is not None and written > limit:
                    raise RequestEntityTooLarge()
                if keep:
                    write(bytes(self.buffer[:end]))
                else:
                    with memoryview(self.buffer) as view, view[:end] as piece:
                        write(piece)
                del self.buffer[:end]  # from the front of a bytearray: no copy
            if found != -1:
                del self.buffer[:len(sep)]
                return written
            if not self._fill():
                raise self.error()

    def next_part(self) -> bytes | None:
        """Return the next part's header block, or None after the closing delimiter."""
        if not self.started:
            self._read_until(self.delimiter, MAX_HEADER_BYTES)  # skip any preamble
            self.started = True
        self._need(2)
        if self.buffer[:2] == b"--":
            return None  # the closing delimiter; an epilogue is ignored
        if self.buffer[:2] != b"\r\n":
            raise self.error()
        del self.buffer[:2]
        self.parts += 1
        if self.max_parts is not None and self.parts > self.max_parts:
            raise RequestEntityTooLarge()
        self._need(2)
        if self.buffer[:2] == b"\r\n":  # a part without headers
            del self.buffer[:2]
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
