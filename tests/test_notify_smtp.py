"""E-mail by SMTP (QAPORTAL_SMTP_*): a real local SMTP server on a free port receives it.

The server below speaks just enough SMTP for smtplib (EHLO/HELO, MAIL, RCPT, DATA, RSET,
NOOP, QUIT); it can be told to refuse every message, to exercise the fallback to the outbox.
"""

from __future__ import annotations

import email
import email.policy
import socket
import socketserver
import threading
from pathlib import Path

import pytest

from qaportal.extensions import db
from qaportal.opinions import service
from tests.conftest import make_test_app
from tests.factories import make_study, make_user


class _Handler(socketserver.StreamRequestHandler):
    def _reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self) -> None:
        server = self.server
        self._reply("220 test-smtp ready")
        sender, rcpts = None, []
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            cmd = raw.decode("ascii", "replace").strip()
            verb = cmd.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self._reply("250 test-smtp")
            elif verb == "MAIL":
                sender, rcpts = cmd.split(":", 1)[1].strip(), []
                self._reply("250 OK")
            elif verb == "RCPT":
                rcpts.append(cmd.split(":", 1)[1].strip().strip("<>"))
                self._reply("250 OK")
            elif verb == "DATA":
                if server.refuse:
                    self._reply("554 Transaction failed: refused by the test")
                    continue
                self._reply("354 End data with <CR><LF>.<CR><LF>")
                lines = []
                while True:
                    line = self.rfile.readline()
                    if line in (b".\r\n", b".\n", b""):
                        break
                    lines.append(line[1:] if line.startswith(b"..") else line)
                server.messages.append((sender, rcpts, b"".join(lines)))
                self._reply("250 OK: queued")
            elif verb in ("RSET", "NOOP"):
                self._reply("250 OK")
            elif verb == "QUIT":
                self._reply("221 Bye")
                return
            else:
                self._reply("502 Command not implemented")


class _SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, refuse: bool = False):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.refuse = refuse
        self.messages: list[tuple[str, list[str], bytes]] = []


@pytest.fixture
def smtp_server():
    servers = []

    def _start(refuse: bool = False) -> _SmtpServer:
        server = _SmtpServer(refuse=refuse)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield _start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def smtp_app(tmp_path, db_url):
    """Build an app whose SMTP settings point at the given port."""
    apps = []

    def _make(port: int):
        app = make_test_app(tmp_path / f"app{len(apps)}", db_url, SMTP_HOST="127.0.0.1",
                            SMTP_PORT=port, SMTP_STARTTLS=False, MAIL_FROM="qa@portal.test",
                            BASE_URL="https://qa.example.test")
        apps.append(app)
        return app

    yield _make
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def _open_request():
    """Open a pool request on an identifiable patient's study; return its id, identifiers."""
    a = make_user(licenses=["CA"], full_name="Dr Requester")
    make_user(subspecialties=["neuro"], licenses=["CA"], email="neuro.b@example.test")
    study = make_study(a, patient_name="ZEBRAFISH^ORLANDO", description="CT HEAD NEUROSURG",
                       report="Orlando Zebrafish, known aneurysm.")
    req = service.create_request(study, a, priority="stat", question="Bleed for Zebrafish?",
                                 pool="neuro")
    db.session.commit()
    return req.id, _identifiers(study)


def _identifiers(study) -> list[str]:
    return ["ZEBRAFISH", "Zebrafish", "ORLANDO", "Orlando", study.patient_id,
            study.accession_number, "NEUROSURG", "aneurysm"]


def _outbox(app) -> list[Path]:
    return sorted(Path(app.config["OUTBOX_DIR"]).glob("*.eml"))


def test_mail_is_delivered_by_smtp_with_only_a_link(smtp_server, smtp_app):
    server = smtp_server()
    app = smtp_app(server.server_address[1])
    with app.app_context():
        req_id, identifiers = _open_request()
        assert _outbox(app) == []
    assert len(server.messages) == 1
    sender, rcpts, raw = server.messages[0]
    assert rcpts == ["neuro.b@example.test"] and "qa@portal.test" in sender
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["To"] == "neuro.b@example.test"
    body = msg.get_content()
    assert f"https://qa.example.test/opinions/{req_id}" in body
    text = str(msg["Subject"]) + "\n" + body
    leaked = [x for x in identifiers if x in text]
    assert not leaked, (leaked, text)


@pytest.mark.parametrize("failure", ["refused", "nobody listening"])
def test_failed_smtp_delivery_falls_back_to_the_outbox(smtp_server, smtp_app, failure):
    if failure == "refused":
        server = smtp_server(refuse=True)
        port = server.server_address[1]
    else:
        with socket.socket() as s:  # a free port with nothing behind it
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = None
    app = smtp_app(port)
    with app.app_context():
        req_id, _ = _open_request()
        files = _outbox(app)
    assert len(files) == 1
    msg = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert msg["To"] == "neuro.b@example.test"
    assert f"https://qa.example.test/opinions/{req_id}" in msg.get_content()
    if server is not None:
        assert server.messages == []  # the server refused it: nothing was delivered
