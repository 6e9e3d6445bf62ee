"""Read a STOW-RS request body (multipart/related) part by part, straight into files.

Each part's body is written as it arrives into a container from a factory (for STOW a
`ReceivedFile`: a private file in UPLOAD_TMP hashed while written, which the image store
then adopts by rename), so a request of hundreds of instances is never held in memory.
A part larger than the per-file limit is not kept: it is read past and reported as too
large, and the other parts still count. A body cut off midway is a 400 (MultipartError,
or werkzeug's ClientDisconnected when fewer bytes arrive than Content-Length said).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from werkzeug.exceptions import BadRequest

from qaportal.dicomweb.negotiate import parse_media_type
from qaportal.studies.multipart import MultipartStream, part_headers

DICOM = "application/dicom"


class RelatedError(BadRequest):
    """The body is not a well-formed multipart/related body."""

    description = ("The request body is not a complete multipart/related body (malformed, "
                   "or cut off before its closing boundary); nothing of it was stored.")


@dataclass
class Part:
    """One part of the body: its media type and container, or None when it was not kept."""

    index: int  # 1-based, in body order
    media_type: str
    container: Any | None
    size: int
    too_large: bool = False


class _Capped:
    """Write into a container until limit bytes; past it, keep counting but drop the data."""

    def __init__(self, container: Any, limit: int | None) -> None:
        self.container = container
        self.limit = limit
        self.size = 0
        self.over = False

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.over:
            return
        if self.limit is not None and self.size > self.limit:
            self.over = True
            return
        self.container.write(data)


class RelatedReader(MultipartStream):
    """Split a multipart/related body into parts, each written to its own container.

    `make_file()` is called for a part of an accepted media type; parts of any other type
    are read past without being kept (their media type is reported). A part without a
    Content-Type header has the body's `type` (RFC 2387: the root's type).
    """

    def __init__(self, stream: IO[bytes], boundary: bytes, *, root_type: str,
                 make_file: Callable[[], Any], accepted: frozenset[str] = frozenset({DICOM}),
                 max_part_bytes: int | None = None, max_parts: int | None = 10_000):
        super().__init__(stream, boundary, max_parts=max_parts)
        self.root_type = root_type.lower()
        self.make_file = make_file
        self.accepted = accepted
        self.max_part_bytes = max_part_bytes

    def error(self) -> BadRequest:
        return RelatedError()

    def iter_parts(self) -> Iterator[Part]:
        """Yield each part once its body is fully read (and its container written)."""
        index = 0
        while (block := self.next_part()) is not None:
            raw_type = part_headers(block).get("content-type")
            media_type = parse_media_type(raw_type)[0] if raw_type else self.root_type
            index += 1
            if media_type not in self.accepted:
                size = self.copy_body(_discard)
                yield Part(index, media_type, None, size)
                continue
            sink = _Capped(self.make_file(), self.max_part_bytes)
            self.copy_body(sink.write)
            yield Part(index, media_type, sink.container, sink.size, sink.over)


def _discard(data: bytes) -> None:
    """A sink that keeps nothing."""
