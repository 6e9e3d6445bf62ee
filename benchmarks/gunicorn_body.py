"""CPU of reading a STOW-RS body from gunicorn: its own read chain against `SocketBody`.

Sends a 50-instance body (50 x 525,000 bytes) over a connected socket pair into gunicorn's
own `Body(LengthReader(SocketUnreader))`, whose unreader holds the body's first 6,000 bytes
(read with the headers, as in a real request), and reads it into one 1 MB buffer as the
multipart reader does: once through werkzeug's stream of it (`request.stream`, what the
STOW view read before), once through `qaportal.studies.socket_body.direct_stream`. Prints
the reading thread's CPU per 512 KB instance (median of `--repeat`, alternating). Run from
the repository root: `python benchmarks/gunicorn_body.py [--repeat 7]`.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]

from gunicorn.http.body import Body, LengthReader  # noqa: E402
from gunicorn.http.unreader import SocketUnreader  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402
from werkzeug.wrappers import Request  # noqa: E402

from qaportal.studies.socket_body import SocketBody, direct_stream  # noqa: E402

INSTANCES = 50
SIZE = 525_000
HELD = 6000  # body bytes gunicorn read along with the headers


def read_ms(payload: bytes, direct: bool) -> float:
    """Return the reading thread's CPU ms per instance for one body."""
    a, b = socket.socketpair()
    # gunicorn reads the headers 8 KB at a time: the first bytes of the body come with them
    # and wait in its unreader (the case the direct path must get out of).
    sender = threading.Thread(target=lambda: (a.sendall(payload[HELD:]), a.close()))
    sender.start()
    unreader = SocketUnreader(b)
    unreader.unread(payload[:HELD])
    environ = EnvironBuilder(method="POST", path="/dicomweb/studies").get_environ()
    environ.update({"wsgi.input": Body(LengthReader(unreader, len(payload))),
                    "wsgi.input_terminated": True, "CONTENT_LENGTH": str(len(payload))})
    request = Request(environ)
    request.max_content_length = 1024**3  # as the portal's MAX_CONTENT_LENGTH
    stream = direct_stream(request) if direct else request.stream
    assert isinstance(stream, SocketBody) == direct
    buf, got = bytearray(1024 * 1024), 0
    cpu = time.thread_time()
    with memoryview(buf) as view:
        while n := stream.readinto(view):
            got += n
    cpu = time.thread_time() - cpu
    sender.join()
    b.close()
    assert got == len(payload)
    return cpu * 1000 / INSTANCES


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    payload = os.urandom(INSTANCES * SIZE)
    chain, direct = [], []
    for _ in range(args.repeat):
        chain.append(read_ms(payload, False))
        direct.append(read_ms(payload, True))
    print(f"gunicorn Body via werkzeug: {statistics.median(chain):.3f} ms CPU/instance "
          f"(min {min(chain):.3f})")
    print(f"SocketBody (recv_into):     {statistics.median(direct):.3f} ms CPU/instance "
          f"(min {min(direct):.3f})")


if __name__ == "__main__":
    main()
