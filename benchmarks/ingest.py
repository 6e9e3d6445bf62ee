"""Ingest and viewer figures for a 500-slice 512² CT study.

Measures: import through the CLI (`qaportal import-study`), upload over HTTP to gunicorn
with 3 worker processes (as `make run`) as the browser does it (batch, chunks of which two
are in flight at once, finish), time to the first rendered
frame of a new series (cold cache), and median per-frame times uncached and cached.
`--store dicomweb` keeps the images in a PACS (Debian's Orthanc with its DICOMweb plugin,
started on a loopback port for the run and stopped after), `--store all` measures both.
Run from the repository root: `python benchmarks/ingest.py [--slices N] [--store S]`.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qaportal import create_app  # noqa: E402
from qaportal.dicom import generate_ct_series  # noqa: E402
from qaportal.extensions import db  # noqa: E402

PASSWORD = "bench-password-123456"
TARGETS = {"http_instances_per_s": 300, "first_frame_ms": 300, "cached_frame_ms": 20}


def make_instance(root: Path, name: str, config: dict | None = None):
    """Build an app with its own instance folder and SQLite database, and one radiologist."""
    app = create_app(config or instance_config(root, name))
    with app.app_context():
        db.create_all()
        from qaportal.models import User
        from qaportal.passwords import hash_password

        user = User(email="bench@example.test", full_name="Bench Radiologist",
                    password_hash=hash_password(PASSWORD), active=True)
        user.set_roles(["radiologist"])
        db.session.add(user)
        db.session.commit()
    return app


class Client:
    """A keep-alive HTTP client with a cookie jar, enough for the portal's forms."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        hdrs = dict(headers or {})
        if self.cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        self.conn.request(method, path, body=body, headers=hdrs)
        resp = self.conn.getresponse()
        data = resp.read()
        for value in resp.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return resp.status, dict(resp.headers), data

    def csrf(self, path: str) -> str:
        _, _, page = self.request("GET", path)
        match = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', page) or \
            re.search(rb'name="csrf_token" value="([^"]+)"', page)
        assert match, f"no CSRF token on {path}"
        return match.group(1).decode()

    def login(self) -> None:
        token = self.csrf("/login")
        body = urlencode({"csrf_token": token, "email": "bench@example.test",
                          "password": PASSWORD}).encode()
        status, _, _ = self.request("POST", "/login", body,
                                    {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 302, f"login failed: {status}"


def multipart(files: list[Path]) -> tuple[bytes, str]:
    """Encode files as the browser's FormData would (field name "files")."""
    boundary = "----bench" + uuid.uuid4().hex
    parts = []
    for path in files:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="ct/{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        )
        parts.append(path.read_bytes())
        parts.append(b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def chunks(files: list[Path], chunk_bytes: int, max_files: int = 200) -> list[list[Path]]:
    """Split files like upload.js: at most chunk_bytes and max_files per request."""
    out: list[list[Path]] = []
    current: list[Path] = []
    size = 0
    for f in files:
        n = f.stat().st_size
        if current and (size + n > chunk_bytes or len(current) >= max_files):
            out.append(current)
            current, size = [], 0
        current.append(f)
        size += n
    if current:
        out.append(current)
    return out


def bench_cli(root: Path, folder: Path, files: list[Path], total_mb: float,
              store: dict | None = None) -> None:
    app = make_instance(root, "cli", instance_config(root, "cli", store))
    runner = app.test_cli_runner()
    start = time.perf_counter()
    result = runner.invoke(args=["import-study", str(folder), "--owner", "bench@example.test"])
    elapsed = time.perf_counter() - start
    assert result.exit_code == 0, result.output[-2000:]
    print(f"CLI import-study: {len(files)} instances in {elapsed:.2f} s = "
          f"{len(files) / elapsed:.0f} instances/s, {total_mb / elapsed:.0f} MB/s")


CONCURRENT_CHUNKS = 2  # upload.js keeps this many chunk requests in flight
WORKERS = 3  # gunicorn workers, as `make run`


def instance_config(root: Path, name: str, store: dict | None = None) -> dict:
    return {
        "INSTANCE_PATH": str(root / name), "SECRET_KEY": "bench-" + uuid.uuid4().hex,
        "LOCAL": True, "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 8, "ARGON2_PARALLELISM": 1,
        **(store or {}),
    }


@contextlib.contextmanager
def image_store_config(kind: str):
    """Yield the app settings of the image store `kind`; dicomweb runs its own Orthanc."""
    if kind == "filesystem":
        yield {}
        return
    from tests.orthanc import Orthanc, unavailable

    reason = unavailable()
    if reason:
        raise SystemExit(f"--store dicomweb: {reason}")
    with Orthanc() as archive:
        yield {"IMAGE_STORE": "dicomweb", "IMAGE_STORE_URL": archive.url + "/dicom-web"}


@contextlib.contextmanager
def gunicorn(root: Path, config: dict, workers: int = WORKERS):
    """Serve the app with gunicorn (sync workers, as `make run`) on a free port; yield it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (root / "bench_wsgi.py").write_text(
        "import json\nfrom qaportal import create_app\n"
        f"app = create_app(json.loads({json.dumps(json.dumps(config))}))\n")
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": f"{repo}{os.pathsep}{root}", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind",
         f"127.0.0.1:{port}", "--timeout", "120", "--log-level", "warning", "bench_wsgi:app"],
        cwd=root, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def bench_http(root: Path, files: list[Path], total_mb: float,
               store: dict | None = None) -> dict:
    config = instance_config(root, "http", store)
    app = make_instance(root, "http", config)
    figures: dict[str, float] = {}
    with gunicorn(root, config) as port:
        client = Client(port)
        client.login()
        token = client.csrf("/studies/upload")
        parts = chunks(files, app.config["UPLOAD_CHUNK_BYTES"])
        bodies = [multipart(p) for p in parts]  # the browser has the files ready too
        senders = [Client(port) for _ in range(CONCURRENT_CHUNKS)]
        for sender in senders:
            sender.cookies = dict(client.cookies)
        start = time.perf_counter()
        status, _, data = client.request("POST", "/studies/upload/batches", b"",
                                         {"X-CSRFToken": token, "Accept": "application/json"})
        assert status == 201, data[:300]
        batch_id = int(re.search(rb'"batch_id":\s*(\d+)', data).group(1))
        queue = list(reversed(bodies))
        lock = threading.Lock()
        failures: list[str] = []

        def send(sender: Client) -> None:
            while True:
                with lock:
                    if not queue:
                        return
                    body, ctype = queue.pop()
                status, _, data = sender.request(
                    "POST", f"/studies/upload/batches/{batch_id}/files", body,
                    {"X-CSRFToken": token, "Accept": "application/json", "Content-Type": ctype})
                if status != 200:
                    failures.append(f"{status} {data[:300]!r}")

        threads = [threading.Thread(target=send, args=(s,)) for s in senders]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures, failures
        form = urlencode({"csrf_token": token, "jurisdiction": "", "reader_id": ""}).encode()
        status, _, data = client.request(
            "POST", f"/studies/upload/batches/{batch_id}/finish", form,
            {"X-CSRFToken": token, "Accept": "application/json",
             "Content-Type": "application/x-www-form-urlencoded"})
        elapsed = time.perf_counter() - start
        assert status == 200, data[:500]
        with app.app_context():
            from qaportal.models import UploadBatch

            batch = db.session.get(UploadBatch, batch_id)
            assert (batch.stored, batch.errors) == (len(files), []), (batch.stored, batch.errors)
        rate = len(files) / elapsed
        figures["http_instances_per_s"] = rate
        print(f"HTTP upload ({len(parts)} requests, {CONCURRENT_CHUNKS} at a time, gunicorn "
              f"{WORKERS} workers): {len(files)} instances in {elapsed:.2f} s = "
              f"{rate:.0f} instances/s, {total_mb / elapsed:.0f} MB/s")
        figures.update(bench_frames(app, client))
    return figures


def bench_frames(app, client: Client) -> dict:
    """Time the viewer's requests on the study just uploaded (cold frame cache)."""
    with app.app_context():
        from qaportal.models import Series

        series = db.session.scalars(db.select(Series)).one()
        study_id, series_id = series.study_id, series.id
    start = time.perf_counter()
    status, _, data = client.request(
        "GET", f"/studies/{study_id}/series/{series_id}/frames.json")
    listed = time.perf_counter()
    assert status == 200
    frames = json.loads(data)["frames"]
    status, headers, _ = client.request("GET", frames[0]["url"])
    first = time.perf_counter()
    assert status == 200 and "X-Frame-Error" not in headers
    print(f"first frame of a new series: frames.json {1000 * (listed - start):.0f} ms + "
          f"frame {1000 * (first - listed):.0f} ms = {1000 * (first - start):.0f} ms")

    def timed(url: str) -> tuple[float, dict]:
        t = time.perf_counter()
        status, headers, _ = client.request("GET", url)
        assert status == 200 and "X-Frame-Error" not in headers
        return 1000 * (time.perf_counter() - t), headers

    sample = frames[1:101]
    uncached = [timed(f["url"] + "?wc=40&ww=400") for f in sample]
    cached = [timed(f["url"] + "?wc=40&ww=400") for f in sample]
    assert all(h["X-Frame-Cache"] == "miss" for _, h in uncached)
    assert all(h["X-Frame-Cache"] == "hit" for _, h in cached)
    med_un = statistics.median(t for t, _ in uncached)
    med_c = statistics.median(t for t, _ in cached)
    print(f"frame over HTTP, median of {len(sample)}: uncached {med_un:.1f} ms, "
          f"cached {med_c:.1f} ms")
    return {"first_frame_ms": 1000 * (first - start), "uncached_frame_ms": med_un,
            "cached_frame_ms": med_c}


def main() -> None:
    import logging

    global CONCURRENT_CHUNKS

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=CONCURRENT_CHUNKS,
                        help="chunk requests in flight at once (upload.js: 2)")
    parser.add_argument("--skip-cli", action="store_true")
    parser.add_argument("--store", choices=["filesystem", "dicomweb", "all"],
                        default="filesystem", help="image store(s) to measure with")
    args = parser.parse_args()
    kinds = ["filesystem", "dicomweb"] if args.store == "all" else [args.store]
    CONCURRENT_CHUNKS = args.concurrency
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory(prefix="qaportal-bench-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        files = generate_ct_series(root / "series", slices=args.slices)
        total_mb = sum(f.stat().st_size for f in files) / 1024**2
        print(f"generated {len(files)} slices ({total_mb:.0f} MB) in "
              f"{time.perf_counter() - start:.1f} s")
        for kind in kinds:
            print(f"--- image store: {kind}")
            with image_store_config(kind) as store:
                folder = root / kind
                folder.mkdir()
                if not args.skip_cli:
                    bench_cli(folder, root / "series", files, total_mb, store)
                figures = bench_http(folder, files, total_mb, store)
            missed = [f"{k} {figures[k]:.1f} (target {'≥' if k.endswith('_s') else '<'} {v})"
                      for k, v in TARGETS.items()
                      if (figures[k] < v if k.endswith("_s") else figures[k] >= v)]
            print(f"{kind}: targets met" if not missed
                  else f"{kind}: targets missed: " + "; ".join(missed))


if __name__ == "__main__":
    main()
