"""CPU per request of the bounded load test: the app, PostgreSQL and the load client.

    PYTHONPATH=$PWD python benchmarks/load_cpu.py --db-url postgresql://...seeded \\
        --instance /path/to/instance [--users 50] [--duration 45] [--runs 1]

Starts gunicorn as benchmarks/scale.py does (3 sync workers, loopback), runs
scale_load.load_test, and reads from /proc the CPU time (user + system) spent during the
run by the gunicorn workers, by the PostgreSQL backends connected to the database, and by
this process (the load client's threads), each divided by the requests served. CPU, not
latency: less sensitive to other work on the machine than p95 (/proc ticks are 10 ms; the
totals over a run are what mean something).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from benchmarks import scale_load  # noqa: E402
from benchmarks.scale import Server, app_env  # noqa: E402

TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def proc_cpu_ms(pid: int) -> float:
    """utime + stime of one process (all its threads), 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) * TICK_MS


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def backends(engine: sa.Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()")).scalars())


def snapshot(server: Server, engine: sa.Engine) -> dict[str, dict[int, float]]:
    workers = children(server.proc.pid)
    return {"gunicorn workers": {p: proc_cpu_ms(p) for p in workers},
            "PostgreSQL backends": {p: proc_cpu_ms(p) for p in backends(engine)}}


def self_cpu_ms() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return (r.ru_utime + r.ru_stime) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db-url", required=True)
    ap.add_argument("--instance", required=True)
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--duration", type=float, default=45.0)
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    url = sa.make_url(args.db_url)
    if url.host not in ("127.0.0.1", "localhost", "::1"):
        ap.error("a loopback server only")
    engine = sa.create_engine(url.set(drivername="postgresql+psycopg"))
    env = app_env(url.render_as_string(hide_password=False), Path(args.instance))
    server = Server(env, Path(args.instance) / "gunicorn.log")
    start: dict = {}

    def signed_in() -> None:  # the sign-ins (Argon2) are not the mix: not counted
        start["at"], start["client"] = snapshot(server, engine), self_cpu_ms()

    try:
        for _ in range(args.runs):
            lr = scale_load.load_test(server.base, args.users, args.duration,
                                      signed_in=signed_in)
            before, client0 = start["at"], start["client"]
            after, client1 = snapshot(server, engine), self_cpu_ms()
            n = len(lr.times_ms)
            parts = {k: sum(v - before[k].get(p, 0.0) for p, v in after[k].items())
                     for k in after}
            parts["load client"] = client1 - client0
            server_ms = parts["gunicorn workers"] + parts["PostgreSQL backends"]
            print(f"{args.users} users, {lr.seconds:.0f} s: {n} requests, {lr.rps:.1f} req/s, "
                  f"p50 {scale_load.percentile(lr.times_ms, 50):.0f} ms, "
                  f"p95 {scale_load.percentile(lr.times_ms, 95):.0f} ms, {lr.errors} errors; "
                  "CPU ms/request: " + ", ".join(f"{k} {v / n:.1f}" for k, v in parts.items())
                  + f"; server {server_ms / n:.1f}; load avg {os.getloadavg()[0]:.2f}",
                  flush=True)
    finally:
        server.stop()
        engine.dispose()


if __name__ == "__main__":
    main()
