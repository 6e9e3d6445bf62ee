"""Debian's Orthanc as a DICOMweb peer for the interop tests and the benchmark.

`Orthanc(...)` starts /usr/sbin/Orthanc with the DICOMweb plugin on a free loopback port,
with its own temporary folder (storage and index), the DICOM server off, no remote access,
no authentication; optionally with DICOMweb "Servers" entries (e.g. the portal's
/dicomweb/ with a Bearer token) that its DICOMweb client can push to, query and retrieve
from. `stop()` ends it and removes the folder. Orthanc 1.10 cannot be told which address to
listen on, so a small preloaded bind() (tests/orthanc_loopback.c, built with cc) keeps it on
127.0.0.1.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
SHIM_SOURCE = Path(__file__).with_name("orthanc_loopback.c")


def unavailable() -> str | None:
    """Why Orthanc cannot be started here (naming the missing package), or None."""
    if not ORTHANC.is_file():
        return "Debian package orthanc is not installed (no /usr/sbin/Orthanc)"
    if not DICOMWEB_PLUGIN.is_file():
        return f"Debian package orthanc-dicomweb is not installed (no {DICOMWEB_PLUGIN})"
    if not shutil.which("cc"):
        return "Debian package gcc is not installed (cc builds the loopback-only bind for Orthanc)"
    return None


@functools.lru_cache(maxsize=1)
def loopback_shim() -> Path:
    """Build the loopback-only bind() once per process; return the shared object's path."""
    folder = tempfile.mkdtemp(prefix="qaportal-orthanc-shim-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    out = Path(folder) / "loopback.so"
    result = subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", str(out), str(SHIM_SOURCE),
                             "-ldl"], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"cannot build {SHIM_SOURCE.name}: {result.stderr.strip()[-500:]}")
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Peer:
    """A DICOMweb server Orthanc's client may talk to: base URL and the headers it sends."""

    url: str
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def bearer(cls, url: str, token: str) -> Peer:
        return cls(url, (("Authorization", f"Bearer {token}"),))

    def config(self) -> dict:
        entry: dict = {"Url": self.url if self.url.endswith("/") else self.url + "/"}
        if self.headers:
            entry["HttpHeaders"] = dict(self.headers)
        return entry


class Orthanc:
    """One Orthanc process with its own folder; use as a context manager or start()/stop()."""

    def __init__(self, peers: dict[str, Peer] | None = None, *, folder: Path | None = None,
                 timeout: float = 60, env: dict[str, str] | None = None, **options) -> None:
        self.peers = dict(peers or {})
        self.env = dict(env or {})  # added to the process's environment
        self.own_folder = folder is None
        self.folder = Path(folder or tempfile.mkdtemp(prefix="qaportal-orthanc-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.timeout = timeout
        self.options = options
        self.proc: subprocess.Popen | None = None
        self.http = requests.Session()
        self.http.trust_env = False  # loopback only: never through a proxy

    def config(self) -> dict:
        storage = self.folder / "storage"
        return {
            "Name": "qaportal-test-peer",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpServerEnabled": True,
            "HttpPort": self.port,
            "DicomServerEnabled": False,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "KeepAlive": True,
            "TcpNoDelay": True,
            "SaveJobs": False,
            "HttpTimeout": 120,
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False,
                         "Servers": {name: peer.config() for name, peer in self.peers.items()}},
            **self.options,
        }

    def start(self) -> Orthanc:
        reason = unavailable()
        if reason:
            raise RuntimeError(reason)
        self.folder.mkdir(parents=True, exist_ok=True)
        config_path = self.folder / "orthanc.json"
        config_path.write_text(json.dumps(self.config(), indent=2))
        env = {**os.environ, **self.env, "LD_PRELOAD": str(loopback_shim())}
        self.log = open(self.folder / "orthanc.log", "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen([str(ORTHANC), str(config_path)], cwd=self.folder,
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + self.timeout
        while True:
            if self.proc.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"Orthanc exited with {self.proc.returncode}: {tail}")
            try:
                if self.http.get(self.url + "/system", timeout=2).ok:
                    return self
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"Orthanc did not answer within {self.timeout} s: {tail}")
            time.sleep(0.1)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return (self.folder / "orthanc.log").read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        self.http.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        if getattr(self, "log", None) is not None:
            self.log.close()
        if self.own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)
        else:
            shutil.rmtree(self.folder / "storage", ignore_errors=True)

    def __enter__(self) -> Orthanc:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- its REST API -------------------------------------------------------------------

    def get(self, path: str, **kw) -> requests.Response:
        response = self.http.get(self.url + path, timeout=kw.pop("timeout", 120), **kw)
        response.raise_for_status()
        return response

    def post(self, path: str, body=None, **kw) -> requests.Response:
        if body is not None and not isinstance(body, bytes | str):
            kw["json"] = body
        else:
            kw["data"] = body
        response = self.http.post(self.url + path, timeout=kw.pop("timeout", 600), **kw)
        if not response.ok:
            raise RuntimeError(f"Orthanc {path} answered {response.status_code}: "
                               f"{response.text[:500]}\nits log: {self.log_tail()}")
        return response

    def upload(self, data: bytes) -> dict:
        """Store one DICOM file through `POST /instances`; return Orthanc's answer."""
        return self.post("/instances", data,
                         headers={"Content-Type": "application/dicom"}).json()

    def instance_file(self, instance_id: str) -> bytes:
        return self.get(f"/instances/{instance_id}/file").content

    def study_instances(self, study_id: str) -> list[dict]:
        return self.get(f"/studies/{study_id}/instances").json()
