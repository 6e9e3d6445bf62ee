"""`make run`'s path for real: migrate, seed the demo, serve with gunicorn and the job worker
(scripts/serve.sh), sign in, stop both."""

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

from tests.console import ROOT, console_env, qaportal

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
    env = console_env(instance, QAPORTAL_LOCAL="1", QAPORTAL_DEMO_PASSWORD=PASSWORD)
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

        # The job worker runs beside gunicorn, and stops when the script is stopped.
        started = dict(re.findall(r"started (job worker|gunicorn) \(pid (\d+)\)",
                                  out.read_text()))
        worker = int(started["job worker"])
        deadline = time.monotonic() + 30
        while "qaportal worker: 2 thread(s)" not in log.read_text():
            assert _alive(worker) and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) != 0
        assert not _alive(worker) and not _alive(int(started["gunicorn"]))
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=60)
        log_file.close()
        out_file.close()


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting for its parent."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
