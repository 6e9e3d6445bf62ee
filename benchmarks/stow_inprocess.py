"""STOW-RS cost per instance in-process: no server, no network.

Posts 50-instance bodies of a 512² CT (512 KB a slice) to POST /dicomweb/studies through
Flask's test client with a write-scope API token (Bearer), on SQLite in a temporary
instance folder, and prints ms per instance, wall-clock and CPU time of the process
(median over the requests of each round, and over rounds), optionally with a cProfile
breakdown. Each round is a fresh portal; its first request is a warm-up (imports, first
connections) and is not counted; every body holds instances the portal does not have yet
(a store, not a duplicate). Run from the repository root:
`python benchmarks/stow_inprocess.py [--rounds 3] [--requests 8] [--profile]
[--stub-header] [--database-url URL]` (PostgreSQL: a URL of an empty database the script
may fill; SQLite otherwise).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

from qaportal import create_app  # noqa: E402
from qaportal.dicom import generate_ct_series  # noqa: E402
from qaportal.extensions import db  # noqa: E402

PER_REQUEST = 50


def related(blobs: list[bytes]) -> tuple[bytes, str]:
    """Encode blobs as a STOW-RS body."""
    boundary = "stow" + uuid.uuid4().hex
    out = []
    for blob in blobs:
        out += [f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode(), blob,
                b"\r\n"]
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f'multipart/related; type="application/dicom"; boundary={boundary}'


def make_portal(root: Path, db_url: str | None):
    """Return (app, token secret) of a fresh portal under root with one radiologist."""
    from qaportal.auth import tokens
    from qaportal.models import User
    from qaportal.passwords import hash_password

    # OHIF_PRECOMPRESS off (as vs_orthanc.py): the viewer's one-off gzip of its build,
    # started by the first request, would otherwise run in a thread during the counted ones.
    config = {"INSTANCE_PATH": str(root / "instance"), "SECRET_KEY": "bench-secret",
              "LOCAL": True, "OHIF_PRECOMPRESS": False, "SQLALCHEMY_DATABASE_URI":
              db_url or f"sqlite:///{root / 'instance' / 'qaportal.sqlite'}"}
    (root / "instance").mkdir(parents=True, exist_ok=True)
    app = create_app(config)
    with app.app_context():
        db.drop_all()
        db.create_all()
        user = User(email="rad@example.org", full_name="Bench Radiologist",
                    password_hash=hash_password("bench-password-123"))
        user.set_roles(("radiologist",))
        db.session.add(user)
        db.session.flush()
        secret = tokens.create(user, label="bench", scopes=("read", "write"),
                               expires_days=None, by=user).secret
        db.session.commit()
    return app, secret


def one_round(root: Path, bodies: list[tuple[bytes, str]], db_url: str | None,
              profile: cProfile.Profile | None) -> list[tuple[float, float]]:
    """Post the warm-up body then every other body; return (wall, CPU) ms per instance of
    each (CPU: this process, every thread)."""
    app, secret = make_portal(root, db_url)
    client = app.test_client()
    figures = []
    for i, (body, ctype) in enumerate(bodies):
        headers = {"Content-Type": ctype, "Accept": "application/dicom+json",
                   "Authorization": f"Bearer {secret}"}
        counted = i > 0
        if counted and profile is not None:
            profile.enable()
        start, cpu = time.perf_counter(), time.process_time()
        response = client.post("/dicomweb/studies", data=body, headers=headers)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        if counted and profile is not None:
            profile.disable()
        if response.status_code != 200:
            raise SystemExit(f"request {i}: {response.status_code} {response.data[:300]!r}")
        if counted:
            figures.append((elapsed * 1000 / PER_REQUEST, cpu * 1000 / PER_REQUEST))
    with app.app_context():
        db.session.remove()
        if db_url:
            db.drop_all()
        db.engine.dispose()
    return figures


def stub_header(files: list[Path]) -> None:
    """Make the ingest look each file's header up (by its first 4 KB) instead of parsing it."""
    import hashlib

    from qaportal.dicom import read_header
    from qaportal.studies import ingest

    known = {}
    for path in files:
        with open(path, "rb") as fp:
            known[hashlib.sha256(fp.read(4096)).digest()] = read_header(path)

    def lookup(path, limits=None):
        with open(path, "rb") as fp:
            return known[hashlib.sha256(fp.read(4096)).digest()]

    ingest.read_header = lookup


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=8, help="counted requests per round")
    ap.add_argument("--profile", action="store_true",
                    help="print a cProfile breakdown (CPU time of the request's thread)")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--stub-header", action="store_true",
                    help="replace the header parse by a lookup of its result made beforehand, "
                         "to see the cost of everything else")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="stow-inproc-") as tmp:
        tmp_path = Path(tmp)
        slices = PER_REQUEST * (args.requests + 1)
        files = generate_ct_series(tmp_path / "ct", slices=slices,
                                   patient=("BENCH^CT", "BENCHCT"))
        blobs = [p.read_bytes() for p in files]
        print(f"{slices} slices of {len(blobs[0]) // 1024} KB, {PER_REQUEST} per request")
        if args.stub_header:
            stub_header(files)
        bodies = [related(blobs[i:i + PER_REQUEST]) for i in range(0, slices, PER_REQUEST)]
        # CPU time of the request's thread: wall-clock entries mostly measure the wait for
        # the interpreter lock and for the other processes of a shared machine.
        profile = cProfile.Profile(time.thread_time) if args.profile else None
        walls, cpus = [], []
        for r in range(args.rounds):
            figures = one_round(tmp_path / f"round{r}", bodies, args.database_url, profile)
            wall = [f[0] for f in figures]
            walls.append(statistics.median(wall))
            cpus.append(statistics.median(f[1] for f in figures))
            print(f"round {r + 1}: median {walls[-1]:.2f} ms/instance (min {min(wall):.2f}, "
                  f"max {max(wall):.2f}), CPU {cpus[-1]:.2f} ms/instance")
        print(f"median of rounds: {statistics.median(walls):.2f} ms/instance, "
              f"CPU {statistics.median(cpus):.2f} ms/instance")
        if profile is not None:
            out = io.StringIO()
            stats = pstats.Stats(profile, stream=out)
            stats.sort_stats("tottime").print_stats(args.top)
            stats.sort_stats("cumulative").print_stats(args.top)
            print(out.getvalue())


if __name__ == "__main__":
    main()
