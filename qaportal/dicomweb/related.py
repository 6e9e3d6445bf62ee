"""multipart/related answers (RFC 2387) written part by part, never whole in memory."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator

from flask import Response

Part = tuple[dict[str, str], bytes]
_JOIN_BELOW = 64 * 1024  # a first chunk up to this size is sent with its part's headers


def new_boundary() -> str:
    """Return a random boundary (hex: it needs no quoting and appears in no DICOM file)."""
    return "qaportal-" + secrets.token_hex(16)


def content_type(part_type: str, boundary: str, syntax: str | None = None) -> str:
    """Return the answer's Content-Type: type=, boundary= and transfer-syntax= when fixed."""
    value = f'multipart/related; type="{part_type}"; boundary={boundary}'
    return value + (f"; transfer-syntax={syntax}" if syntax else "")


def stream(parts: Iterable[tuple[dict[str, str], Iterable[bytes]]],
           boundary: str) -> Iterator[bytes]:
    """Yield the body: each part's headers and body chunks, then the closing delimiter.

    A part whose body raises stops the stream there (no closing delimiter is written), so
    a client sees a broken answer rather than a complete one with an instance missing.
    """
    marker = f"--{boundary}\r\n".encode("ascii")
    for index, (headers, body) in enumerate(parts):
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        start = (b"\r\n" if index else b"") + marker + head.encode("ascii") + b"\r\n"
        chunks = iter(body)
        first = next(chunks, b"")
        # The headers go out with a small first chunk (one write less per part).
        if len(first) <= _JOIN_BELOW:
            yield start + first
        else:
            yield start
            yield first
        yield from chunks
    yield f"\r\n--{boundary}--\r\n".encode("ascii")


def related_response(parts: Iterable[Part], part_type: str, *, eager: bool = False,
                     transfer_syntax: str | None = None) -> Response:
    """Answer a multipart/related body whose parts are (headers, bytes).

    eager builds the body at once (it then has a Content-Length); otherwise parts stream.
    """
    boundary = new_boundary()
    body = stream(((headers, (data,)) for headers, data in parts), boundary)
    ctype = content_type(part_type, boundary, transfer_syntax)
    if eager:
        return Response(b"".join(body), content_type=ctype)
    return Response(body, content_type=ctype, direct_passthrough=True)
