"""multipart/related responses (RFC 2387) for WADO-RS: parts written as they are produced."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator

from flask import Response

Part = tuple[dict[str, str], bytes]


def _encode(boundary: bytes, parts: Iterable[Part]) -> Iterator[bytes]:
    for headers, body in parts:
        head = b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in headers.items())
        yield b"--" + boundary + b"\r\n" + head + b"\r\n"
        yield body
        yield b"\r\n"
    yield b"--" + boundary + b"--\r\n"


def related_response(parts: Iterable[Part], part_type: str, *, eager: bool = False,
                     **params: str) -> Response:
    """Answer a multipart/related body whose parts are (headers, bytes).

    The Content-Type names the parts' type and any extra parameters (transfer-syntax).
    eager builds the body at once (it then has a Content-Length); otherwise parts stream.
    """
    boundary = uuid.uuid4().hex
    extra = "".join(f"; {k.replace('_', '-')}={v}" for k, v in params.items())
    content_type = f'multipart/related; type="{part_type}"{extra}; boundary={boundary}'
    body = _encode(boundary.encode(), parts)
    if eager:
        return Response(b"".join(body), content_type=content_type)
    return Response(body, content_type=content_type, direct_passthrough=True)
