"""The streaming multipart reader of the upload endpoints."""

from __future__ import annotations

import io
import os

import pytest
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

from qaportal.studies import multipart
from qaportal.studies.multipart import MultipartReader

BOUNDARY = b"----qaportalTestBoundary7MA4YWxk"


def body(parts, boundary=BOUNDARY, preamble=b"", epilogue=b"") -> bytes:
    out = [preamble]
    for name, filename, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out.append(b"--" + boundary + b"\r\nContent-Disposition: " + disp.encode() + b"\r\n")
        if filename:
            out.append(b"Content-Type: application/dicom\r\n")
        out.append(b"\r\n" + data + b"\r\n")
    out.append(b"--" + boundary + b"--\r\n" + epilogue)
    return b"".join(out)


def read(raw: bytes, **kw):
    return MultipartReader(io.BytesIO(raw), BOUNDARY, make_file=lambda n, f: io.BytesIO(),
                           **kw).parse()


@pytest.mark.parametrize("read_size", [1, 7, 64, 1024 * 1024])
def test_fields_and_files_survive_any_read_size(monkeypatch, read_size):
    monkeypatch.setattr(multipart, "READ_SIZE", read_size)
    payload = os.urandom(5000) + b"\r\n--" + BOUNDARY[:-3] + b"\r\n" + os.urandom(300)
    raw = body([("csrf_token", None, b"tok\r\nen"), ("files", "a/b.dcm", payload),
                ("files", "empty.dcm", b""), ("jurisdiction", None, "CA é".encode())],
               preamble=b"ignored preamble\r\n", epilogue=b"ignored")
    fields, files = read(raw)
    assert fields == [("csrf_token", "tok\r\nen"), ("jurisdiction", "CA é")]
    assert [(n, f) for n, f, _ in files] == [("files", "a/b.dcm"), ("files", "empty.dcm")]
    assert files[0][2].getvalue() == payload and files[1][2].getvalue() == b""


@pytest.mark.parametrize("raw", [
    b"no boundary at all",
    b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nunterminated",
    b"--" + BOUNDARY + b"\r\nContent-Disposition: attachment; name=\"x\"\r\n\r\nv\r\n--"
    + BOUNDARY + b"--",
    b"--" + BOUNDARY + b"XX",
])
def test_malformed_bodies_are_a_bad_request(raw):
    with pytest.raises(BadRequest):
        read(raw)


def test_a_field_over_the_memory_limit_is_refused():
    with pytest.raises(RequestEntityTooLarge):
        read(body([("notes", None, b"x" * 2000)]), max_field_bytes=1000)


def test_too_many_parts_are_refused():
    with pytest.raises(RequestEntityTooLarge):
        read(body([("f", None, b"1")] * 5), max_parts=4)


class _ReadOnly:
    """A stream with read() only, returning fewer bytes than asked (as a socket body may)."""

    def __init__(self, raw: bytes, most: int) -> None:
        self.raw = io.BytesIO(raw)
        self.most = most

    def read(self, n: int = -1) -> bytes:
        return self.raw.read(min(n, self.most) if n >= 0 else self.most)


@pytest.mark.parametrize("read_size", [1, 5, 4096, 1024 * 1024])
@pytest.mark.parametrize("stream", ["readinto", "read"])
def test_parts_survive_any_read_size_and_stream_kind(monkeypatch, read_size, stream):
    monkeypatch.setattr(multipart, "READ_SIZE", read_size)
    payloads = [os.urandom(n) for n in (0, 1, 37, 70_000, 300_000)]
    # A body part holding an almost-delimiter across where reads end. The byte after the
    # boundary's prefix is fixed: a random one completes the real delimiter once in 256
    # runs, and the body is then malformed in truth (seen in CI).
    assert BOUNDARY[-1:] != b"\x00"
    payloads.append(b"\r\n--" + BOUNDARY[:-1] + b"\x00" + os.urandom(9000) + b"\r\n-")
    raw = body([("files", f"{i}.dcm", p) for i, p in enumerate(payloads)])
    source = io.BytesIO(raw) if stream == "readinto" else _ReadOnly(raw, 3000)
    fields, files = MultipartReader(source, BOUNDARY,
                                    make_file=lambda n, f: io.BytesIO()).parse()
    assert fields == []
    assert [f[2].getvalue() for f in files] == payloads


def test_the_read_buffer_is_allocated_once(monkeypatch):
    monkeypatch.setattr(multipart, "READ_SIZE", 4096)
    raw = body([("files", "a.dcm", os.urandom(200_000)), ("files", "b.dcm", os.urandom(5))])
    reader = MultipartReader(io.BytesIO(raw), BOUNDARY, make_file=lambda n, f: io.BytesIO())
    buffer = reader.buffer
    size = len(buffer)
    reader.parse()
    assert reader.buffer is buffer and len(buffer) == size
