"""Ingest and viewer figures for a 500-slice 512² CT study.

Measures: import through the CLI (`qaportal import-study`), upload over HTTP to a real
threaded server as the browser does it (batch, chunks, finish), time to the first rendered
frame of a new series (cold cache), and median per-frame times uncached and cached.
Run from the repository root: `python benchmarks/ingest.py [--slices N]`.
"""

from __future__ import annotations

import argparse
import http.client
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
import warnings
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from werkzeug.serving import make_server  # noqa: E402

from qaportal import create_app  # noqa: E402
from qaportal.dicom import generate_ct_series  # noqa: E402
from qaportal.extensions import db  # noqa: E402

PASSWORD = "bench-password-123456"
TARGETS = {"http_instances_per_s": 300, "first_frame_ms": 300, "cached_frame_ms": 20}


def make_instance(root: Path, name: str):
    """Build an app with its own instance folder and SQLite database, and one radiologist."""
    app = create_app({
        "INSTANCE_PATH": str(root / name), "SECRET_KEY": "bench-" + uuid.uuid4().hex,
        "LOCAL": True, "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 8, "ARGON2_PARALLELISM": 1,
    })
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


def bench_cli(root: Path, folder: Path, files: list[Path], total_mb: float) -> None:
    app = make_instance(root, "cli")
    runner = app.test_cli_runner()
    start = time.perf_counter()
    result = runner.invoke(args=["import-study", str(folder), "--owner", "bench@example.test"])
    elapsed = time.perf_counter() - start
    assert result.exit_code == 0, result.output[-2000:]
    print(f"CLI import-study: {len(files)} instances in {elapsed:.2f} s = "
          f"{len(files) / elapsed:.0f} instances/s, {total_mb / elapsed:.0f} MB/s")


def serve(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


def bench_http(root: Path, files: list[Path], total_mb: float) -> dict:
    app = make_instance(root, "http")
    server = serve(app)
    figures: dict[str, float] = {}
    try:
        client = Client(server.server_port)
        client.login()
        token = client.csrf("/studies/upload")
        parts = chunks(files, app.config["UPLOAD_CHUNK_BYTES"])
        bodies = [multipart(p) for p in parts]  # the browser has the files ready too
        start = time.perf_counter()
        status, _, data = client.request("POST", "/studies/upload/batches", b"",
                                         {"X-CSRFToken": token, "Accept": "application/json"})
        assert status == 201, data[:300]
        batch_id = int(re.search(rb'"batch_id":\s*(\d+)', data).group(1))
        for body, ctype in bodies:
            status, _, data = client.request(
                "POST", f"/studies/upload/batches/{batch_id}/files", body,
                {"X-CSRFToken": token, "Accept": "application/json", "Content-Type": ctype})
            assert status == 200, data[:300]
        form = urlencode({"csrf_token": token, "jurisdiction": "", "reader_id": ""}).encode()
        status, _, data = client.request(
            "POST", f"/studies/upload/batches/{batch_id}/finish", form,
            {"X-CSRFToken": token, "Accept": "application/json",
             "Content-Type": "application/x-www-form-urlencoded"})
        elapsed = time.perf_counter() - start
        assert status == 200, data[:500]
        rate = len(files) / elapsed
        figures["http_instances_per_s"] = rate
        print(f"HTTP upload ({len(parts)} requests): {len(files)} instances in {elapsed:.2f} s = "
              f"{rate:.0f} instances/s, {total_mb / elapsed:.0f} MB/s")
        figures.update(bench_frames(app, client))
    finally:
        server.shutdown()
    return figures


def bench_frames(app, client: Client) -> dict:
    """Time the viewer's requests on the study just uploaded (cold frame cache)."""
    import json

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

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=500)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory(prefix="qaportal-bench-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        files = generate_ct_series(root / "series", slices=args.slices)
        total_mb = sum(f.stat().st_size for f in files) / 1024**2
        print(f"generated {len(files)} slices ({total_mb:.0f} MB) in "
              f"{time.perf_counter() - start:.1f} s")
        bench_cli(root, root / "series", files, total_mb)
        figures = bench_http(root, files, total_mb)
    missed = [f"{k} {figures[k]:.1f} (target {'≥' if k.endswith('_s') else '<'} {v})"
              for k, v in TARGETS.items()
              if (figures[k] < v if k.endswith("_s") else figures[k] >= v)]
    print("targets met" if not missed else "targets missed: " + "; ".join(missed))


if __name__ == "__main__":
    main()
