"""Time `qaportal audit-verify` on a large audit log in PostgreSQL: full and incremental.

Creates a database of its own on the local PostgreSQL server (loopback, dropped at the
end), builds the schema, seeds N chained entries (real hashes and MACs, written with
COPY), then runs the command's own code as `qaportal audit-verify` does: a full pass
(which writes a verified checkpoint), then, after more entries were added through
qaportal.audit.record, `--incremental` from that checkpoint. Prints seconds and the
process's peak memory. Target: the full pass under a minute at 2M entries.

Run from the repository root:
`python benchmarks/audit_verify.py [--entries 2000000] [--more 10000]
[--server postgresql://postgres@127.0.0.1:5432/test]`
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402

from qaportal import create_app  # noqa: E402
from qaportal.extensions import db  # noqa: E402

ACTIONS = ("auth.login", "study.view", "opinion.sign", "review.submit", "report.export")
BATCH = 50_000


def _copy_rows(conn, rows: list[tuple]) -> None:
    buf = io.StringIO()
    for row in rows:
        buf.write("\t".join("\\N" if v is None else str(v) for v in row) + "\n")
    buf.seek(0)
    cols = ("seq, occurred_at, actor_id, actor_label, action, object_type, object_id, "
            "source_ip, details, prev_hash, entry_hash, entry_mac")
    with conn.connection.dbapi_connection.cursor() as cur:
        with cur.copy(f"COPY audit_events ({cols}) FROM STDIN") as copy:
            copy.write(buf.getvalue())


def seed(app, n: int) -> float:
    """Write n chained entries with COPY; return the seconds it took."""
    from qaportal import audit, audit_anchor

    key = app.config["AUDIT_KEY"]
    start = time.perf_counter()
    t0 = datetime.now(UTC) - timedelta(days=730)
    prev = audit.GENESIS
    with db.engine.begin() as conn:
        rows: list[tuple] = []
        for seq in range(1, n + 1):
            at = t0 + timedelta(seconds=seq * 30)
            fields = {"seq": seq, "occurred_at": audit._iso(at), "actor_id": None,
                      "actor_label": f"user{seq % 54}@bench.test",
                      "action": ACTIONS[seq % len(ACTIONS)], "object_type": "studies",
                      "object_id": str(seq % 100_000), "source_ip": "127.0.0.1",
                      "details": {"n": seq % 7}, "prev_hash": prev}
            h = audit.entry_hash(fields)
            rows.append((seq, at.isoformat(), None, fields["actor_label"], fields["action"],
                         "studies", fields["object_id"], "127.0.0.1",
                         json.dumps(fields["details"]), prev, h, audit_anchor.entry_mac(key, h)))
            prev = h
            if len(rows) == BATCH:
                _copy_rows(conn, rows)
                rows = []
        if rows:
            _copy_rows(conn, rows)
        conn.execute(sa.text("UPDATE audit_head SET seq = :s, entry_hash = :h WHERE id = 1"),
                     {"s": n, "h": prev})
    return time.perf_counter() - start


def timed(label: str, fn):
    start = time.perf_counter()
    result = fn()
    took = time.perf_counter() - start
    print(f"{label}: {took:.1f} s -> {result.line()}", flush=True)
    return result, took


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=2_000_000)
    ap.add_argument("--more", type=int, default=10_000)
    ap.add_argument("--server", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    server = sa.engine.make_url(args.server).set(drivername="postgresql+psycopg")
    name = f"qaportal_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        with tempfile.TemporaryDirectory() as root:
            app = create_app({
                "INSTANCE_PATH": root, "SECRET_KEY": "bench-secret-key",
                "SQLALCHEMY_DATABASE_URI": server.set(database=name).render_as_string(False),
                "AUDIT_SYSLOG": False,
            })
            with app.app_context():
                from qaportal import audit
                from qaportal.audit_verify import verify

                db.create_all()
                took = seed(app, args.entries)
                print(f"seeded {args.entries} entries with COPY in {took:.1f} s", flush=True)
                with db.engine.connect() as conn:
                    conn.exec_driver_sql("ANALYZE audit_events")
                result, full = timed("audit-verify (full)", verify)
                audit.anchor_head(result)
                for i in range(args.more):
                    audit.record("bench.more", None, actor_label="bench", n=i)
                    if i % 1000 == 999:
                        db.session.commit()
                db.session.commit()
                _, inc = timed(f"audit-verify --incremental (+{args.more})",
                               lambda: verify(incremental=True))
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                print(f"full {full:.1f} s (target < 60 s at 2M), incremental {inc:.2f} s, "
                      f"peak memory {peak:.0f} MB")
                db.session.remove()
                db.engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
