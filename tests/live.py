"""The real app served over HTTP on a free loopback port, for clients that need a socket.

The browser tests drive it with Chromium; the DICOMweb interop tests with dicomweb-client
and with Orthanc, which pushes to the portal and retrieves from it over real HTTP.
"""

from __future__ import annotations

import threading

from werkzeug.serving import make_server


class LiveServer:
    """The app served by a threaded WSGI server in this process (127.0.0.1 only)."""

    def __init__(self, app):
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
