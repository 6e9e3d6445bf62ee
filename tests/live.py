"""The real app served over HTTP on a free loopback port, for clients that need a socket.

The browser tests drive it with Chromium; the DICOMweb interop tests with dicomweb-client
and with Orthanc, which pushes to the portal and retrieves from it over real HTTP.
"""

from __future__ import annotations

import re
import threading

import requests
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


CSRF_FIELD = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|'
                        r'name="csrf_token" value="([^"]+)"')


def csrf_token(session: requests.Session, url: str) -> str:
    """The CSRF token of the form at `url` (the session's cookie jar keeps its session)."""
    page = session.get(url, timeout=30)
    page.raise_for_status()
    match = CSRF_FIELD.search(page.text)
    assert match, f"no CSRF token on {url}"
    return match.group(1) or match.group(2)


def signed_in_session(base_url: str, email: str, password: str) -> requests.Session:
    """A requests.Session signed in through the login form, as a browser would be."""
    session = requests.Session()
    session.trust_env = False  # loopback only: never through a proxy
    token = csrf_token(session, base_url + "/login")
    response = session.post(base_url + "/login", allow_redirects=False, timeout=30,
                            data={"csrf_token": token, "email": email, "password": password})
    assert response.status_code == 302, f"login failed: {response.status_code}"
    return session
