"""One page in-process against a seeded database: time, SQL statements and a profile.

    QAPORTAL_DATABASE_URL=... QAPORTAL_INSTANCE_PATH=... QAPORTAL_SECRET_KEY=...
    QAPORTAL_AUDIT_KEY=... QAPORTAL_LOCAL=1 \\
    python benchmarks/page_profile.py USER_ID PATH [--repeat 10] [--profile] [--sql]

Signs in as the seeded user (benchmarks/scale_seed.py), requests the page twice to warm
up, then `--repeat` times: prints the median and the best wall time, the number of SQL
statements and their time; --sql prints each statement's time, --profile the cProfile of
one more request (cumulative, top 40).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from benchmarks.scale_seed import PASSWORD, email  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("user", type=int)
    ap.add_argument("path")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--sql", action="store_true")
    args = ap.parse_args()

    from qaportal import create_app
    from qaportal.extensions import db

    app = create_app({"WTF_CSRF_ENABLED": False, "AUDIT_SYSLOG": False,
                      "REQUIRE_2FA_ROLES": [], "SIGN_IN_RATE_LIMIT": "100000 per minute"})
    client = app.test_client()
    r = client.post("/login", data={"email": email(args.user), "password": PASSWORD})
    assert r.status_code == 302, r.status_code
    stmts: list[tuple[float, str]] = []
    with app.app_context():
        engine = db.engine

    @sa.event.listens_for(engine, "before_cursor_execute")
    def before(conn, cursor, statement, parameters, context, executemany):
        conn.info["t0"] = time.perf_counter()

    @sa.event.listens_for(engine, "after_cursor_execute")
    def after(conn, cursor, statement, parameters, context, executemany):
        stmts.append(((time.perf_counter() - conn.info.pop("t0")) * 1000, statement))

    def get() -> tuple[float, int]:
        t = time.perf_counter()
        resp = client.get(args.path)
        resp.get_data()
        took = (time.perf_counter() - t) * 1000
        assert resp.status_code == 200, resp.status_code
        return took, len(resp.get_data())

    for _ in range(2):
        get()
    times, sql_ms, counts = [], [], []
    for _ in range(args.repeat):
        stmts.clear()
        took, size = get()
        times.append(took)
        sql_ms.append(sum(s[0] for s in stmts))
        counts.append(len(stmts))
    print(f"{args.path} as user {args.user}: median {statistics.median(times):.1f} ms, "
          f"best {min(times):.1f} ms, SQL {statistics.median(sql_ms):.1f} ms in "
          f"{counts[-1]} statements, {size} bytes")
    if args.sql:
        for ms, s in stmts:
            print(f"{ms:7.2f}  {' '.join(s.split())[:220]}")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        get()
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
