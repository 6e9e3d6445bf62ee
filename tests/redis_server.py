"""Debian's redis-server as the job queue's backend in the tests: started per test session
on a free loopback port with its own temporary folder, no persistence, stopped at the end.
Tests never use a Redis that happens to run on the machine (e.g. on 6379)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.orthanc import free_port

REDIS_SERVER = "redis-server"


def unavailable() -> str | None:
    """Why Redis cannot be started here (naming the missing package), or None."""
    if shutil.which(REDIS_SERVER) is None:
        return "Debian package redis-server is not installed (no redis-server)"
    return None


class RedisServer:
    """One redis-server process bound to 127.0.0.1 only, with its files under `folder`."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="qaportal-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.log = self.folder / "redis.log"
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port),
             "--dir", str(self.folder), "--save", "", "--appendonly", "no",
             "--protected-mode", "yes", "--logfile", str(self.log), "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self._wait()
        except BaseException:
            self.stop()
            raise

    def _wait(self, timeout: float = 15.0) -> None:
        import redis

        deadline = time.monotonic() + timeout
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self._log_tail()}")
            try:
                client.ping()
                return
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not answer: {self._log_tail()}") from None
                time.sleep(0.05)
            finally:
                client.close()

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-500:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A Redis of the test run's own (skipped with the package named when it is missing)."""
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    server = RedisServer()
    try:
        yield server
    finally:
        server.stop()
