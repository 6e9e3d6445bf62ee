"""CPU per request of the load test's mix, in-process, against a seeded database.

    QAPORTAL_DATABASE_URL=... QAPORTAL_INSTANCE_PATH=... QAPORTAL_SECRET_KEY=...
    QAPORTAL_AUDIT_KEY=... QAPORTAL_LOCAL=1 QAPORTAL_AUDIT_SYSLOG=0 \\
    python benchmarks/mix_profile.py [--users 50] [--rounds 4] [--profile 40]

Signs in the accounts the 50-user load test uses (benchmarks/scale_load.py), each through
its own test client with CSRF on, requests every page of its role's mix once to warm up,
then `--rounds` times picks one page of its mix per account (a fixed random sequence, so
runs compare). Prints, per page and for the whole mix: requests, the app's CPU per request
(time.process_time), the PostgreSQL backend's CPU per request (read from /proc for the
connections this process opened; 10 ms ticks, so only the totals mean much), SQL
statements, and bytes. --profile N prints the cProfile of the measured rounds (top N by
own time, then by cumulative time). CPU, not wall time: robust to a shared machine.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from benchmarks.scale_load import MIX, _role_of, load_users  # noqa: E402
from benchmarks.scale_seed import PASSWORD, email  # noqa: E402

CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def _backend_cpu_ms(pids: set[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total * TICK_MS


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--profile", type=int, default=0)
    ap.add_argument("--sql", type=int, default=0,
                    help="print the N statements of the mix that took the most time in all")
    ap.add_argument("--dump", help="write the profile's stats to this file (pstats)")
    ap.add_argument("--only", help="measure only the requests of the pages whose path "
                    "contains this (the plan is the same; the other requests are left out)")
    args = ap.parse_args()

    from qaportal import create_app
    from qaportal.extensions import db

    app = create_app({"AUDIT_SYSLOG": False, "REQUIRE_2FA_ROLES": [],
                      "SIGN_IN_RATE_LIMIT": "100000 per minute"})
    with app.app_context():
        engine = db.engine
    backends: set[int] = set()
    counts = [0]
    sql_time: dict[str, list] = defaultdict(lambda: [0.0, 0])

    @sa.event.listens_for(engine, "connect")
    def on_connect(dbapi_conn, record):
        cur = dbapi_conn.cursor()
        cur.execute("SELECT pg_backend_pid()")
        backends.add(cur.fetchone()[0])
        cur.close()

    @sa.event.listens_for(engine, "before_cursor_execute")
    def count(conn, cursor, statement, parameters, context, executemany):
        counts[0] += 1
        conn.info["t0"] = time.perf_counter()

    @sa.event.listens_for(engine, "after_cursor_execute")
    def timed(conn, cursor, statement, parameters, context, executemany):
        entry = sql_time[statement]
        entry[0] += (time.perf_counter() - conn.info.pop("t0")) * 1000
        entry[1] += 1

    with app.app_context():
        db.engine.dispose()  # the connections from here on are seen by on_connect
    clients = []
    for uid in load_users(args.users):
        c = app.test_client()
        token = CSRF.search(c.get("/login").get_data(as_text=True)).group(1)
        r = c.post("/login", data={"csrf_token": token, "email": email(uid),
                                   "password": PASSWORD})
        assert r.status_code == 302, (uid, r.status_code)
        clients.append((uid, c, MIX[_role_of(uid)]))

    def get(c, path: str) -> tuple[float, int, int]:
        counts[0] = 0
        t = time.process_time()
        r = c.get(path)
        body = r.get_data()
        took = (time.process_time() - t) * 1000
        assert r.status_code == 200, (path, r.status_code)
        return took, counts[0], len(body)

    for _uid, c, mix in clients:
        for path in dict.fromkeys(mix):
            get(c, path)
    rng = random.Random(16)
    plan = [(c, rng.choice(mix), _role_of(uid)) for _ in range(args.rounds)
            for uid, c, mix in clients]
    if args.only:
        plan = [step for step in plan if args.only in step[1]]
    per: dict[tuple[str, str], list] = defaultdict(list)
    prof = cProfile.Profile(time.process_time) if args.profile else None
    sql_time.clear()
    pg0, app0 = _backend_cpu_ms(backends), time.process_time()
    if prof:
        prof.enable()
    for c, path, role in plan:
        per[(role, path)].append(get(c, path))
    if prof:
        prof.disable()
    app_ms = (time.process_time() - app0) * 1000
    pg_ms = _backend_cpu_ms(backends) - pg0
    n = len(plan)
    print(f"{'role':<11} {'page':<27} {'n':>4} {'CPU ms':>7} {'stmts':>5} {'bytes':>7}")
    for (role, path), rows in sorted(per.items()):
        cpu = sum(r[0] for r in rows) / len(rows)
        print(f"{role:<11} {path:<27} {len(rows):4d} {cpu:7.1f} {rows[-1][1]:5d} "
              f"{rows[-1][2]:7d}")
    print(f"mix: {n} requests, app CPU {app_ms / n:.1f} ms/request, PostgreSQL backend CPU "
          f"{pg_ms / n:.1f} ms/request (backends {sorted(backends)})")
    top = sorted(sql_time.items(), key=lambda kv: -kv[1][0])[:args.sql]
    for statement, (ms, calls) in top:
        print(f"{ms:8.1f} ms {calls:5d}x  {' '.join(statement.split())[:300]}")
    if prof:
        stats = pstats.Stats(prof)
        if args.dump:
            stats.dump_stats(args.dump)
        stats.sort_stats("tottime").print_stats(args.profile)
        stats.sort_stats("cumulative").print_stats(args.profile)


if __name__ == "__main__":
    main()
