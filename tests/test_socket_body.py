"""STOW-RS bodies read straight from gunicorn's socket (qaportal.studies.socket_body).

Real parts: gunicorn's own Body/LengthReader/SocketUnreader over a connected socket pair,
werkzeug's Request over a WSGI environ as gunicorn builds it (wsgi.input_terminated).
"""

from __future__ import annotations

import os
import socket
import threading

import pytest
from gunicorn.http.body import Body, ChunkedReader, LengthReader
from gunicorn.http.unreader import SocketUnreader
from werkzeug.exceptions import ClientDisconnected
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from qaportal.dicomweb.multipart_related import RelatedReader
from qaportal.studies.socket_body import SocketBody, direct_stream


def _request(body: Body, length: int | None, max_length: int | None = None) -> Request:
    environ = EnvironBuilder(method="POST", path="/dicomweb/studies").get_environ()
    environ["wsgi.input"] = body
    environ["wsgi.input_terminated"] = True
    if length is None:
        environ.pop("CONTENT_LENGTH", None)
    else:
        environ["CONTENT_LENGTH"] = str(length)
    request = Request(environ)
    request.max_content_length = max_length
    return request


def _connected(payload: bytes, *, close: bool = True):
    """Return (receiving socket, sender thread) with payload sent from the other end."""
    a, b = socket.socketpair()

    def send():
        a.sendall(payload)
        if close:
            a.close()

    thread = threading.Thread(target=send)
    thread.start()
    return b, thread, a


def _read_all(stream, chunk: int = 64 * 1024) -> bytes:
    out, buf = bytearray(), bytearray(chunk)
    with memoryview(buf) as view:
        while n := stream.readinto(view):
            out += view[:n]
    return bytes(out)


@pytest.mark.parametrize("max_length", [None, 1024**3])
def test_body_read_exactly_up_to_its_length_with_read_ahead_first(max_length):
    body_bytes = os.urandom(3 * 1024 * 1024 + 17)
    next_request = b"GET /next HTTP/1.1\r\n\r\n"
    sock, thread, other = _connected(body_bytes[4096:] + next_request)
    unreader = SocketUnreader(sock)
    unreader.unread(body_bytes[:4096])  # what gunicorn read past the headers
    body = Body(LengthReader(unreader, len(body_bytes)))
    request = _request(body, len(body_bytes), max_length)

    stream = direct_stream(request)
    assert isinstance(stream, SocketBody)
    assert _read_all(stream) == body_bytes
    assert body.reader.length == 0 and not body.failed
    thread.join()
    # The next request on the connection is where it starts, untouched.
    assert unreader.read(len(next_request)) == next_request
    sock.close()


class _CountingSocket:
    """A connected socket that counts the recv() calls gunicorn's unreader makes (the
    direct path uses recv_into)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.recvs = 0

    def recv(self, size: int) -> bytes:
        self.recvs += 1
        return self.sock.recv(size)

    def recv_into(self, view, size: int) -> int:
        return self.sock.recv_into(view, size)


def test_read_ahead_is_handed_out_then_the_socket_is_read_directly():
    # Under gunicorn (23 and later) the unreader holds what came with the headers, and
    # gunicorn's own reads read ahead up to 1 MB: asking it for those bytes left a surplus
    # each time, so every read of the body went through its buffers (regression: about
    # 0.5 ms of CPU per 512 KB instance).
    body_bytes = os.urandom(5 * 1024 * 1024 + 3)
    sock, thread, other = _connected(body_bytes[3000:], close=False)
    counting = _CountingSocket(sock)
    unreader = SocketUnreader(counting)
    unreader.unread(body_bytes[:3000])
    body = Body(LengthReader(unreader, len(body_bytes)))
    stream = direct_stream(_request(body, len(body_bytes)))
    assert _read_all(stream, chunk=1024 * 1024) == body_bytes
    assert counting.recvs == 0
    assert body.reader.length == 0 and not body.failed
    thread.join()
    other.close()
    sock.close()


def test_bytes_held_by_gunicorns_body_come_first():
    body_bytes = os.urandom(300_000)
    sock, thread, other = _connected(body_bytes[100_000:], close=False)
    unreader = SocketUnreader(sock)
    unreader.unread(body_bytes[1000:100_000])
    body = Body(LengthReader(unreader, len(body_bytes) - 1000))
    body.buf.write(body_bytes[:1000])  # gunicorn's Body read these off already
    stream = SocketBody(body)
    assert _read_all(stream, chunk=700) == body_bytes
    assert body.reader.length == 0
    thread.join()
    other.close()
    sock.close()


def test_multipart_parts_come_out_whole():
    blobs = [os.urandom(700_000), os.urandom(5), os.urandom(1_500_000)]
    boundary = "b" * 70
    payload = b"".join(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
                       + blob + b"\r\n" for blob in blobs) + f"--{boundary}--\r\n".encode()
    sock, thread, other = _connected(payload)
    body = Body(LengthReader(SocketUnreader(sock), len(payload)))
    stream = direct_stream(_request(body, len(payload), 1024**3))
    files = []

    class Sink(list):
        def write(self, data):
            self.append(bytes(data))

    reader = RelatedReader(stream, boundary.encode(), root_type="application/dicom",
                           make_file=lambda: files.append(Sink()) or files[-1])
    sizes = [part.size for part in reader.iter_parts()]
    assert sizes == [len(b) for b in blobs]
    assert [b"".join(f) for f in files] == blobs
    thread.join()
    sock.close()


def test_body_cut_off_before_its_length_is_a_disconnect():
    sock, thread, other = _connected(b"x" * 1000)  # then the client closes
    body = Body(LengthReader(SocketUnreader(sock), 5000))
    stream = direct_stream(_request(body, 5000))
    with pytest.raises(ClientDisconnected):
        _read_all(stream)
    assert body.failed  # gunicorn does not reuse the connection
    thread.join()
    sock.close()


def test_other_bodies_keep_werkzeugs_stream():
    sock, thread, other = _connected(b"5\r\nhello\r\n0\r\n\r\n")
    chunked = Body(ChunkedReader({}, SocketUnreader(sock)))
    request = _request(chunked, None)
    assert direct_stream(request) is request.stream  # chunked: no known length
    thread.join()
    sock.close()
    sock, thread, other = _connected(b"abcdef")
    body = Body(LengthReader(SocketUnreader(sock), 6))
    request = _request(body, 6)
    assert request.stream.read(2) == b"ab"
    assert direct_stream(request) is request.stream  # read from already
    thread.join()
    sock.close()
