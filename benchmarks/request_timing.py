"""Where a slow request's time goes, per request, inside each gunicorn worker.

A gunicorn configuration module for measuring (never for serving):

    gunicorn -c python:benchmarks.request_timing ... 'qaportal:create_app()'

with QAPORTAL_REQUEST_TIMING=<file> in the environment (benchmarks/scale.py sets it with
--timing-log). Each worker appends one JSON line per request to that file: the path, the
worker's pid and request number, whether the worker served that path before, the wall
time, the CPU time of the worker's thread, the time spent in the garbage collector (per
generation), in SQL statements (their number) and in COMMITs, and the time the worker
waited for nothing it did itself (wall - CPU - SQL - commit: scheduling by the machine).
`python benchmarks/request_timing.py <file>` summarises the file: the slowest requests and
what they spent their time on.

Nothing here changes what a request does; the hooks only read clocks.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from collections import defaultdict

_state = {"gc_start": 0.0, "gc_ms": [0.0, 0.0, 0.0], "gc_n": [0, 0, 0], "sql_ms": 0.0,
          "sql_n": 0, "commit_ms": 0.0}


def _gc_callback(phase: str, info: dict) -> None:
    if phase == "start":
        _state["gc_start"] = time.perf_counter()
    else:
        gen = info["generation"]
        _state["gc_ms"][gen] += (time.perf_counter() - _state["gc_start"]) * 1000
        _state["gc_n"][gen] += 1


def _install_sql_clock() -> None:
    import psycopg
    import sqlalchemy as sa
    from sqlalchemy.engine import Engine

    @sa.event.listens_for(Engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):
        conn.info["_t0"] = time.perf_counter()

    @sa.event.listens_for(Engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):
        _state["sql_ms"] += (time.perf_counter() - conn.info.pop("_t0")) * 1000
        _state["sql_n"] += 1

    commit = psycopg.Connection.commit

    def timed_commit(self):
        t = time.perf_counter()
        try:
            return commit(self)
        finally:
            _state["commit_ms"] += (time.perf_counter() - t) * 1000

    psycopg.Connection.commit = timed_commit


def post_worker_init(worker) -> None:
    """Wrap the worker's WSGI callable: time each request until its body is sent."""
    log_path = os.environ["QAPORTAL_REQUEST_TIMING"]
    gc.callbacks.append(_gc_callback)
    _install_sql_clock()
    app = worker.wsgi
    seen: set[str] = set()
    counter = [0]

    def timed(environ, start_response):
        for key in ("sql_ms", "commit_ms"):
            _state[key] = 0.0
        _state["sql_n"] = 0
        _state["gc_ms"], _state["gc_n"] = [0.0, 0.0, 0.0], [0, 0, 0]
        path = environ.get("PATH_INFO", "") + ("?" + environ["QUERY_STRING"]
                                               if environ.get("QUERY_STRING") else "")
        status = []

        def sr(s, headers, exc_info=None):
            status.append(s.split()[0])
            return start_response(s, headers, exc_info)

        t, c = time.perf_counter(), time.thread_time()
        body = app(environ, sr)
        try:
            yield from body
        finally:
            if hasattr(body, "close"):
                body.close()
            wall = (time.perf_counter() - t) * 1000
            cpu = (time.thread_time() - c) * 1000
            counter[0] += 1
            record = {
                "pid": os.getpid(), "n": counter[0], "path": path,
                "status": status[0] if status else "?", "first": path not in seen,
                "wall": round(wall, 2), "cpu": round(cpu, 2),
                "gc": [round(x, 2) for x in _state["gc_ms"]], "gc_n": _state["gc_n"],
                "sql": round(_state["sql_ms"], 2), "sql_n": _state["sql_n"],
                "commit": round(_state["commit_ms"], 2),
            }
            seen.add(path)
            with open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")

    worker.wsgi = timed


def summarise(path: str, slowest: int = 25) -> None:
    """Print the slowest requests of a timing file and, per path, the median and maximum."""
    rows = [json.loads(line) for line in open(path)]
    rows = [r for r in rows if not r["path"].startswith(("/login", "/health"))]
    print(f"{len(rows)} requests")
    print(f"{'wall':>7} {'cpu':>7} {'sql':>7} {'n':>4} {'commit':>6} {'gc0/1/2 ms':>17} "
          f"{'other':>7} first  pid   req  path")
    for r in sorted(rows, key=lambda r: -r["wall"])[:slowest]:
        other = r["wall"] - r["cpu"] - r["sql"] - r["commit"]
        print(f"{r['wall']:7.1f} {r['cpu']:7.1f} {r['sql']:7.1f} {r['sql_n']:4} "
              f"{r['commit']:6.1f} {'/'.join(f'{g:.0f}' for g in r['gc']):>17} {other:7.1f} "
              f"{str(r['first'])[0]:>5} {r['pid']:>6} {r['n']:>4}  {r['path'][:60]}")
    by_path = defaultdict(list)
    for r in rows:
        by_path[r["path"]].append(r)
    total_cpu = sum(r["cpu"] for r in rows) or 1.0
    print(f"\n{'requests':>8} {'wall p50':>8} {'wall max':>8} {'cpu p50':>8} {'sql p50':>8} "
          f"{'cpu share':>9}  path")
    for p, rs in sorted(by_path.items(), key=lambda kv: -sum(r["cpu"] for r in kv[1])):
        walls = sorted(r["wall"] for r in rs)
        print(f"{len(rs):8} {walls[len(walls) // 2]:8.0f} {walls[-1]:8.0f} "
              f"{sorted(r['cpu'] for r in rs)[len(rs) // 2]:8.0f} "
              f"{sorted(r['sql'] for r in rs)[len(rs) // 2]:8.0f} "
              f"{sum(r['cpu'] for r in rs) / total_cpu:9.0%}  {p[:60]}")
    gc2 = sum(r["gc"][2] for r in rows)
    print(f"\ngc: gen2 {sum(r['gc_n'][2] for r in rows)} runs, {gc2:.0f} ms in all; "
          f"gen1 {sum(r['gc_n'][1] for r in rows)} runs, {sum(r['gc'][1] for r in rows):.0f} ms; "
          f"gen0 {sum(r['gc_n'][0] for r in rows)} runs, {sum(r['gc'][0] for r in rows):.0f} ms")


if __name__ == "__main__":
    summarise(sys.argv[1])
