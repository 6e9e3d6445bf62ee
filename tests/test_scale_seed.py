"""benchmarks/scale_seed.py fills a migrated PostgreSQL database through COPY, every
constraint on: a tiny stage is seeded into a database of its own (made and dropped here), then
its row counts, its constraints, triggers and indexes, its sequences, its summary tables and
its audit chain (`qaportal audit-verify` through the CLI) are checked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import PG_ENV

ROOT = Path(__file__).resolve().parent.parent

# the tables whose id is a serial the app keeps using after the seed
SERIAL_TABLES = ("users", "studies", "original_reads", "review_assignments", "reviews",
                 "discrepancy_cases", "committee_members", "notifications", "opinion_requests",
                 "audit_events")


@pytest.fixture
def seeded(tmp_path):
    """(url, CLI environment, the seed's report lines) of a tiny department, dropped after."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"needs a PostgreSQL server ({PG_ENV}): the seed uses COPY")
    sys.path.insert(0, str(ROOT))
    from benchmarks import scale, scale_seed

    admin = sa.create_engine(sa.make_url(base).set(drivername="postgresql+psycopg",
                                                   database="postgres"),
                             isolation_level="AUTOCOMMIT")
    name = f"qaportal_seed_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(base).set(drivername="postgresql", database=name)
    url = url.render_as_string(hide_password=False)
    env = scale.app_env(url, tmp_path / "instance")
    try:
        subprocess.run(scale.qaportal_cmd("db", "upgrade"), env=env, cwd=ROOT, check=True,
                       capture_output=True)
        said: list[str] = []
        scale_seed.seed(url, "tiny", scale.AUDIT_KEY, say=said.append)
        yield url, env, said
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def test_tiny_stage_is_seeded_whole_with_every_constraint_on(seeded):
    from benchmarks import scale, scale_seed

    url, env, said = seeded
    stage = scale_seed.STAGES["tiny"]
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            def one(sql: str):
                return conn.exec_driver_sql(sql).scalar_one()

            counts = {table: one(f"SELECT count(*) FROM {table}")  # noqa: S608 - ours
                      for table in ("users", "user_roles", "studies", "original_reads",
                                    "review_assignments", "reviews", "discrepancy_cases",
                                    "committee_members", "notifications", "opinion_requests",
                                    "audit_events")}
            assignments = stage["reviews"] * 20 // 19 + 1
            significant = one("SELECT count(*) FROM reviews WHERE score = '3b'")
            assert counts == {
                "users": 54, "user_roles": 54, "studies": stage["studies"],
                "original_reads": stage["studies"], "review_assignments": assignments,
                "reviews": assignments - assignments // 20,
                "discrepancy_cases": significant, "committee_members": 3 * significant,
                "notifications": stage["studies"], "opinion_requests": stage["opinions"],
                "audit_events": stage["audit"]}
            assert abs(counts["reviews"] - stage["reviews"]) <= 1
            assert abs(significant - stage["cases"]) <= stage["cases"] // 10
            # each review is its submitted assignment's; each case is a '3b' review's
            assert one("SELECT count(*) FROM review_assignments a FULL JOIN reviews v "
                       "ON v.assignment_id = a.id WHERE a.status = 'submitted' "
                       "AND v.id IS NULL OR a.status <> 'submitted' "
                       "AND v.id IS NOT NULL") == 0
            assert one("SELECT count(*) FROM discrepancy_cases c JOIN reviews v "
                       "ON v.id = c.review_id WHERE v.score <> '3b'") == 0
            # every constraint, trigger and index on, as the migrations left them
            assert one("SELECT count(*) FROM pg_constraint WHERE NOT convalidated") == 0
            assert one("SELECT count(*) FROM pg_trigger WHERE tgenabled = 'D'") == 0
            assert one("SELECT count(*) FROM pg_index WHERE NOT indisvalid") == 0
            assert one("SELECT count(*) FROM pg_constraint c JOIN pg_class t "
                       "ON t.oid = c.conrelid WHERE t.relname = 'reviews' "
                       "AND c.contype = 'c'") >= 5
            # the app's next row in each table gets a free id
            for table in SERIAL_TABLES:
                last = one(f"SELECT pg_sequence_last_value("
                           f"pg_get_serial_sequence('{table}', 'id'))")
                top = one(f"SELECT max(id) FROM {table}")  # noqa: S608 - our table names
                assert last is not None and last >= top, table
            # the statistics' summaries count the seeded reviews and assignments
            # (the seeded reviews are ad hoc ones: counted apart from the rated ones)
            for summary in ("review_day_counts", "review_month_counts"):
                assert one(f"SELECT sum(adhoc + unable + s_1 + s_2a + s_2b + s_3a + s_3b) "  # noqa: S608
                           f"FROM {summary}") == counts["reviews"], summary
            assert one("SELECT count(*) FROM (SELECT reviewer_id, status, count(*) "
                       "FROM review_assignments GROUP BY 1, 2 EXCEPT "
                       "SELECT reviewer_id, status, n FROM reviewer_status_counts) d") == 0
            assert one("SELECT seq FROM audit_head") == stage["audit"]
    finally:
        engine.dispose()
    assert any(line.startswith("  review_assignments: ") for line in said)
    done = subprocess.run(scale.qaportal_cmd("audit-verify"), env=env, cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"audit log intact: {stage['audit']} entries" in done.stdout
