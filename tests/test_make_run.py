"""`make run`'s path for real: migrate, seed the demo, serve with gunicorn, the job worker and
the DICOM and HL7 listeners (scripts/serve.sh), sign in, feed the demo's known peer by
C-ECHO, C-STORE and an HL7 ORU, stop them all."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from qaportal.dicom import generate_ct_series
from tests.console import ROOT, console_env, qaportal
from tests.test_feeds_hl7 import oru, send

PASSWORD = "violet-harbour-lantern-42"
# Runs its own SQLite instance in subprocesses: the SQLite pass of `make test` runs it and the
# PostgreSQL pass leaves it out (-m "not slow").
pytestmark = pytest.mark.slow


def test_the_makefile_runs_these_commands():
    recipe = (ROOT / "Makefile").read_text().split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "QAPORTAL_LOCAL=1 $(VENV)/bin/qaportal db upgrade" in recipe
    assert "QAPORTAL_LOCAL=1 $(VENV)/bin/qaportal demo" in recipe
    assert "QAPORTAL_LOCAL=1 exec scripts/serve.sh $(VENV) $(HOST):$(PORT) $(WORKERS)" in recipe
    serve = (ROOT / "scripts" / "serve.sh").read_text()
    assert 'start "job worker" "$VENV/bin/qaportal" worker' in serve
    assert 'start "DICOM listener" "$VENV/bin/qaportal" dicom-listen' in serve
    assert 'start "HL7 listener" "$VENV/bin/qaportal" hl7-listen' in serve
    assert "'qaportal:create_app()'" in serve


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _wait_for(url: str, server: subprocess.Popen, log: Path, seconds: float = 40) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text()
        try:
            urllib.request.urlopen(url, timeout=10).close()  # noqa: S310 (localhost)
            return
        except OSError:  # not listening yet (URLError), or a worker still starting
            time.sleep(0.2)
    pytest.fail(f"gunicorn did not answer {url} in {seconds} s")


def test_make_run_serves_a_working_demo(tmp_path):
    instance = tmp_path / "instance"
    dicom_port, hl7_port = _free_port(), _free_port()
    env = console_env(instance, QAPORTAL_LOCAL="1", QAPORTAL_DEMO_PASSWORD=PASSWORD,
                      QAPORTAL_DICOM_LISTEN_PORT=str(dicom_port),
                      QAPORTAL_HL7_LISTEN_PORT=str(hl7_port))
    instance.mkdir()
    upgrade = qaportal(env, "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    demo = qaportal(env, "demo")
    assert demo.returncode == 0, demo.stderr
    assert f"password for all: {PASSWORD}" in demo.stdout
    assert "rad@demo.qaportal.test" in demo.stdout
    # QAPORTAL_INSTANCE_PATH put everything in the temp instance, none in the checkout's.
    assert {"qaportal.sqlite", "secret_key", "demo-password"} <= {
        f.name for f in instance.iterdir()}

    port = _free_port()
    venv = Path(sys.executable).parent.parent
    log = tmp_path / "serve.log"
    log_file = log.open("w")
    out = tmp_path / "serve.out"
    out_file = out.open("w")
    server = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "serve.sh"), str(venv), f"127.0.0.1:{port}", "2"],
        env=env, cwd=instance, stdout=out_file, stderr=log_file)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{base}/health", server, log)
        with urllib.request.urlopen(f"{base}/health", timeout=5) as resp:  # noqa: S310
            assert resp.status == 200
            assert json.loads(resp.read()) == {"status": "ok", "database": "ok"}

        jar = http.cookiejar.CookieJar()
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar),
                                              _NoRedirect)
        page = browser.open(f"{base}/login", timeout=10).read().decode()
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"|'
                          r'name="csrf_token" value="([^"]+)"', page)
        assert token, "no CSRF token on the login page"
        form = urllib.parse.urlencode({
            "csrf_token": token.group(1) or token.group(2),
            "email": "rad@demo.qaportal.test", "password": PASSWORD}).encode()
        with pytest.raises(urllib.error.HTTPError) as redirect:
            browser.open(f"{base}/login", data=form, timeout=30)
        assert redirect.value.code == 302, redirect.value.read()[:300]
        assert "/login" not in redirect.value.headers["Location"]
        home = browser.open(f"{base}/", timeout=10).read().decode()
        assert "Dr. Ada Radley" in home
        # Searches carry patient names and IDs in their query string: never logged.
        browser.open(f"{base}/dicomweb/studies?PatientName=QSECRET%5EPAT*"
                     "&00100020=QSECRETPID", timeout=10).read()
        browser.open(f"{base}/studies/?q=QSECRETQ", timeout=10).read()

        # The job worker and the listeners run beside gunicorn, and stop when it stops.
        started = {name: int(pid) for name, pid in re.findall(
            r"started (job worker|gunicorn|DICOM listener|HL7 listener) \(pid (\d+)\)",
            out.read_text())}
        assert len(started) == 4, out.read_text()
        deadline = time.monotonic() + 30
        while "qaportal worker: 2 thread(s)" not in log.read_text():
            assert _alive(started["job worker"]) and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        _feed_the_demo_peer(dicom_port, hl7_port, log, tmp_path)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) != 0
        assert not any(_alive(pid) for pid in started.values()), started
        out_file.flush()
        log_file.flush()
        logged = out.read_text() + log.read_text()
        assert '"GET /dicomweb/studies HTTP/1.1" 200' in logged, logged[-2000:]
        assert '"GET /studies/ HTTP/1.1" 200' in logged, logged[-2000:]
        for secret in ("QSECRET", "MAKE^RUN", "MAKERUN"):
            assert secret not in logged, [line for line in logged.splitlines()
                                          if secret in line]
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=60)
        log_file.close()
        out_file.close()


def _dcmtk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*args], capture_output=True, text=True, timeout=60)


def _feed_the_demo_peer(dicom_port: int, hl7_port: int, log: Path, tmp_path: Path) -> None:
    """The demo's known peer (DEMO_PACS on this machine) echoes, stores an image and sends
    a read, as docs/demo.md shows."""
    peer = ["-aet", "DEMO_PACS", "-aec", "QAPORTAL", "127.0.0.1", str(dicom_port)]
    deadline = time.monotonic() + 30
    while (echo := _dcmtk("echoscu", *peer)).returncode != 0:
        assert time.monotonic() < deadline, echo.stderr + log.read_text()
        time.sleep(0.3)
    files = generate_ct_series(tmp_path / "pushed", slices=2, patient=("MAKE^RUN", "MAKERUN"))
    stored = _dcmtk("storescu", "--required", *peer, *map(str, files))
    assert stored.returncode == 0, stored.stderr
    while True:
        try:
            ack = send(hl7_port, oru("MAKERUN1", "ACCMAKERUN", reader="DEMO-RAD-1"))
            break
        except ConnectionRefusedError:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
    assert ack[0]["code"] == "AA" and ack[0]["control"] == "MAKERUN1", ack


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting for its parent."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
