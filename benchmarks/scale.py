"""Measure qaportal at department scale on PostgreSQL against the targets of issue 16.

Creates a throwaway database qaportal_scale_<random> on the loopback PostgreSQL server
(--server), builds its schema with `qaportal db upgrade`, seeds a department
(benchmarks/scale_seed.py: stage tiny, A or B; every constraint on; a valid audit chain),
starts gunicorn with 3 workers on a free loopback port against it, then
- pages: signs in per role, warms each page up, times 30 sequential GETs (p50, p95);
- load: --users accounts at once (closed loop, 0.5-1.5 s think time, home pages and
  worklists), each for --duration seconds: p50, p95, requests per second, errors;
- reports: `qaportal report oppe` and `department` over the last year, in a child process:
  seconds and the peak RSS of the largest process (the CLI or its PDF renderer);
- audit: `qaportal audit-verify`, then `--incremental` after the pages added entries.
(`qaportal routes` is timed too: the CLI's start-up, part of every CLI figure.)
Prints one table (measure, p50, p95 or value, target, PASS/MISS). gunicorn is always
stopped; the database is dropped unless --keep (--db-url reuses one seeded before; give the
same --instance to keep its audit key and anchor file).

Run from the repository root: `python benchmarks/scale.py --stage B` (see
docs/deployment.md for the latest figures).
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from benchmarks import scale_load, scale_seed  # noqa: E402

PAGE_P95_MS, LOAD_P95_MS, REPORT_S, REPORT_MB, VERIFY_S = 100, 200, 5.0, 500, 60.0
AUDIT_KEY = "5ca1e" * 13  # 65 characters: the benchmark's own audit key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(url: str, instance: Path) -> dict[str, str]:
    """The environment of gunicorn and the CLI: the database, the instance, local mode."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "QAPORTAL_DATABASE_URL": url,
            "QAPORTAL_INSTANCE_PATH": str(instance), "QAPORTAL_SECRET_KEY": "scale-" * 8,
            "QAPORTAL_LOCAL": "1", "QAPORTAL_AUDIT_KEY": AUDIT_KEY,
            "QAPORTAL_AUDIT_SYSLOG": "0", "QAPORTAL_REQUIRE_2FA_ROLES": "none",
            "QAPORTAL_SIGN_IN_RATE_LIMIT": "100000 per minute"}


def qaportal_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "from qaportal.cli import main; main()", *args]


def timed_child(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Run cmd in a wrapper process; return (seconds, peak RSS in MB of the largest of its
    processes, exit status). The wrapper's RUSAGE_CHILDREN covers the command and every
    process it waited for (the PDF renderer)."""
    wrapper = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
               "rc = subprocess.run(sys.argv[1:]).returncode; "
               "print(time.perf_counter() - t, "
               "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", wrapper, *cmd], env=env, cwd=ROOT,
                          capture_output=True, text=True)
    seconds, kib, rc = done.stderr.strip().splitlines()[-1].split()
    if int(rc):
        print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
    return float(seconds), int(kib) / 1024, int(rc)


class Server:
    """gunicorn with scale_load.WORKERS (3) workers on a free loopback port; stopped by
    stop() (always)."""

    def __init__(self, env: dict[str, str], log: Path, timing_log: str | None = None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log.open("ab")
        timing = []
        if timing_log:  # per-request breakdown in each worker (benchmarks/request_timing.py)
            env = {**env, "QAPORTAL_REQUEST_TIMING": str(Path(timing_log).resolve())}
            timing = ["-c", "python:benchmarks.request_timing"]
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), *timing, "--workers",
             str(scale_load.WORKERS), "--bind",
             f"127.0.0.1:{self.port}", "--timeout", "120", "qaportal:create_app()"],
            env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        import requests

        for _ in range(300):
            try:
                if requests.get(self.base + "/health", timeout=2).status_code < 500:
                    return
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited {self.proc.returncode}; see {log}")
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer in 60 s; see {log}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def run(args, url: str, instance: Path, seeded: bool) -> list[tuple]:
    """Everything after the database exists; returns the table's rows."""
    env = app_env(url, instance)
    rows: list[tuple] = []
    if not seeded:
        subprocess.run(qaportal_cmd("db", "upgrade"), env=env, cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        t = time.perf_counter()
        print(f"seeding stage {args.stage} ...", flush=True)
        steps = scale_seed.seed(url, args.stage, AUDIT_KEY)
        took = time.perf_counter() - t
        print(f"seeded in {took:.0f} s (tables {steps['tables']:.0f} s and audit chain "
              f"{steps['audit']:.0f} s side by side, summary {steps['summary']:.0f} s, "
              f"VACUUM ANALYZE {steps['analyze']:.0f} s)", flush=True)
        rows.append(("seed (COPY)", "", f"{took:.0f} s", "", "-"))
    server = Server(env, instance / "gunicorn.log", args.timing_log)
    try:
        if not args.load_only:
            for r in scale_load.measure_pages(server.base, repeat=args.repeat,
                                                   only=args.only):
                ok = r.status == 200 and r.p95 < PAGE_P95_MS
                rows.append((f"{r.label} [{r.status}]", f"{r.p50:.0f}", f"{r.p95:.0f}",
                             f"p95 < {PAGE_P95_MS} ms", verdict(ok)))
                print(rows[-1], flush=True)
        if not args.pages_only:
            for n in args.users:
                lr = scale_load.load_test(server.base, n, args.duration)
                target = n >= 50
                rows.append((f"load {n} users, {args.duration:.0f} s, {lr.rps:.1f} req/s, "
                             f"{len(lr.times_ms)} req, {lr.errors} errors",
                             f"{scale_load.percentile(lr.times_ms, 50):.0f}",
                             f"{scale_load.percentile(lr.times_ms, 95):.0f}",
                             f"p95 < {LOAD_P95_MS} ms, 0 errors" if target else "(reported)",
                             verdict(lr.errors == 0 and scale_load.percentile(lr.times_ms, 95)
                                     < LOAD_P95_MS) if target else "-"))
                print(rows[-1], flush=True)
    finally:
        server.stop()
    if args.pages_only or args.load_only:
        return rows
    end = date.today()
    start = end - timedelta(days=364)
    period = ("--from", start.isoformat(), "--to", end.isoformat())
    # what every CLI run below spends before its work: Python, the app, its imports
    secs, mb, rc = timed_child(qaportal_cmd("routes"), env)
    rows.append(("CLI start-up alone (qaportal routes)", "", f"{secs:.1f} s, {mb:.0f} MB",
                 "", "-"))
    with tempfile.TemporaryDirectory() as out:
        for kind, extra in (("oppe", ("--radiologist", scale_seed.email(2))),
                            ("department", ())):
            secs, mb, rc = timed_child(qaportal_cmd("report", kind, *extra, *period, "-o",
                                                    f"{out}/{kind}.pdf"), env)
            rows.append((f"report {kind} (CLI){'' if rc == 0 else f' exit {rc}'}", "",
                         f"{secs:.1f} s, {mb:.0f} MB", f"< {REPORT_S:.0f} s, < {REPORT_MB} MB",
                         verdict(rc == 0 and secs < REPORT_S and mb < REPORT_MB)))
            print(rows[-1], flush=True)
    for label, extra in (("audit-verify", ()), ("audit-verify --incremental",
                                                ("--incremental",))):
        secs, mb, rc = timed_child(qaportal_cmd("audit-verify", *extra), env)
        rows.append((f"{label}{'' if rc == 0 else f' exit {rc}'}", "",
                     f"{secs:.1f} s, {mb:.0f} MB", f"< {VERIFY_S:.0f} s",
                     verdict(rc == 0 and secs < VERIFY_S)))
        print(rows[-1], flush=True)
    return rows


def print_table(rows: list[tuple]) -> None:
    widths = [max(len(str(r[i])) for r in rows + [HEADER]) for i in range(5)]
    for row in [HEADER, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


HEADER = ("measure", "p50 ms", "p95 ms / value", "target", "result")


def main(argv: list[str] | None = None) -> list[tuple]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stage", choices=sorted(scale_seed.STAGES), default="B")
    ap.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--db-url", help="a database seeded before (--keep): reuse it")
    ap.add_argument("--instance", help="instance folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the database")
    ap.add_argument("--pages-only", action="store_true")
    ap.add_argument("--load-only", action="store_true")
    ap.add_argument("--users", default="10,50",
                    type=lambda v: [int(x) for x in v.split(",") if x])
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per load run")
    ap.add_argument("--repeat", type=int, default=30, help="timed requests per page")
    ap.add_argument("--timing-log", help="append each request's time breakdown in the "
                    "workers to this file (benchmarks/request_timing.py summarises it)")
    ap.add_argument("--only", help="measure only the pages whose label contains this")
    args = ap.parse_args(argv)
    server = sa.make_url(args.db_url or args.server)
    if server.host not in ("127.0.0.1", "localhost", "::1"):
        ap.error("the benchmark creates and drops databases: a loopback server only")
    instance = Path(args.instance or tempfile.mkdtemp(prefix="qaportal-scale-"))
    instance.mkdir(parents=True, exist_ok=True)
    print(f"load average before: {os.getloadavg()}", flush=True)
    if args.db_url:
        rows = run(args, server.render_as_string(hide_password=False), instance, True)
    else:
        name = f"qaportal_scale_{secrets.token_hex(4)}"
        admin = sa.create_engine(server.set(drivername="postgresql+psycopg",
                                            database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        print(f"database {name}", flush=True)
        url = server.set(database=name, drivername="postgresql").render_as_string(False)
        try:
            rows = run(args, url, instance, False)
        finally:
            if args.keep:
                print(f"kept: --db-url {url} --instance {instance}")
            else:
                with admin.connect() as conn:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()
    print(f"\nstage {args.stage}; load average after: {os.getloadavg()}; "
          f"benchmark peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")
    print_table(rows)
    return rows


if __name__ == "__main__":
    main()
