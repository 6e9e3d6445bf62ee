"""STOW-RS ingest figures: a 500-slice 512² CT stored through POST /dicomweb/studies.

gunicorn with several sync workers on loopback (as `make run`), a signed-in radiologist
(session cookie and X-CSRFToken), 50 instances per request, 1 and 4 clients at once, each
run into an empty portal. Run from the repository root:
`python benchmarks/stow.py [--slices 500] [--per-request 50] [--workers 4]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from ingest import Client, gunicorn, instance_config, make_instance  # noqa: E402

from qaportal.dicom import generate_ct_series  # noqa: E402


def related(files: list[Path]) -> tuple[bytes, str]:
    """Encode files as a STOW-RS body."""
    boundary = "stow" + uuid.uuid4().hex
    out = []
    for path in files:
        out += [f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode(),
                path.read_bytes(), b"\r\n"]
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f'multipart/related; type="application/dicom"; boundary={boundary}'


def server_cpu_s(port: int) -> float:
    """Return the CPU seconds used so far by the gunicorn workers listening on port."""
    import os

    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in _workers(port):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def _workers(port: int) -> list[int]:
    """The pids of the gunicorn processes (master and workers) serving port (Linux)."""
    import subprocess

    out = subprocess.run(["pgrep", "-f", f"gunicorn.*127.0.0.1:{port}"],
                         capture_output=True, text=True).stdout
    masters = [int(p) for p in out.split()]
    pids = list(masters)
    for pid in masters:
        children = Path(f"/proc/{pid}/task/{pid}/children")
        if children.exists():
            pids += [int(c) for c in children.read_text().split()]
    return sorted(set(pids))


def run(root: Path, name: str, files: list[Path], per_request: int, clients: int,
        workers: int, config_extra: dict) -> float:
    config = {**instance_config(root, name), **config_extra}
    make_instance(root, name, config)
    bodies = [related(files[i:i + per_request]) for i in range(0, len(files), per_request)]
    with gunicorn(root, config, workers) as port:
        senders = []
        for _ in range(clients):
            c = Client(port)
            c.login()
            senders.append((c, c.csrf("/upload")))
        queue = list(range(len(bodies)))
        lock = threading.Lock()
        failures: list[str] = []

        def send(c: Client, token: str) -> None:
            while True:
                with lock:
                    if not queue:
                        return
                    i = queue.pop(0)
                body, ctype = bodies[i]
                status, _, data = c.request("POST", "/dicomweb/studies", body, {
                    "Content-Type": ctype, "Accept": "application/dicom+json",
                    "X-CSRFToken": token})
                if status != 200:
                    failures.append(f"{status} {data[:200]!r}")

        threads = [threading.Thread(target=send, args=s) for s in senders]
        cpu = server_cpu_s(port)
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        cpu = server_cpu_s(port) - cpu
    assert not failures, failures[:3]
    rate = len(files) / elapsed
    print(f"STOW-RS {name}: {len(files)} instances, {per_request}/request, {clients} "
          f"client(s), {workers} workers: {elapsed:.2f} s = {rate:.0f} instances/s; "
          f"server CPU {cpu / len(files) * 1000:.2f} ms/instance")
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=500)
    ap.add_argument("--per-request", type=int, default=50)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--clients", type=int, nargs="*", default=[1, 4])
    ap.add_argument("--series", help="a folder of an already generated series to reuse")
    ap.add_argument("--database-url", help="PostgreSQL URL (default: SQLite per run)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="qaportal-stow-bench-") as tmp:
        root = Path(tmp)
        if args.series:
            files = sorted(Path(args.series).glob("*.dcm"))[:args.slices]
        else:
            files = generate_ct_series(root / "ct", slices=args.slices)
        extra = {"SQLALCHEMY_DATABASE_URI": args.database_url} if args.database_url else {}
        for n in args.clients:
            run(root, f"c{n}", files, args.per_request, n, args.workers, extra)


if __name__ == "__main__":
    main()
