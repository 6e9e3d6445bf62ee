"""Give each test an empty schema without rebuilding it every time.

Building the schema (create_all: ~40 tables, their triggers and the seeded audit head) costs
about half a second on PostgreSQL and dominated the PostgreSQL pass. Instead:

- PostgreSQL: the run's database keeps its schema between tests. Each test starts by
  deleting every row (triggers off for that transaction, so the append-only and immutable-row
  triggers do not refuse, and foreign keys need no order), restarting the sequences that were
  used, and putting back the rows create_all seeds. A catalog fingerprint (relations, columns,
  defaults, constraints, triggers and whether they are enabled, functions, rules, types)
  taken after the build is checked first: a test that dropped a trigger, a table or the
  whole schema makes the next test rebuild it with drop_all + create_all, as before.
- SQLite: each test has a new file; it is a copy of one built once per run.

The reset runs when the test's app is made, not after the previous test, so a test that
failed or was interrupted half way leaves nothing the next one sees.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from qaportal import sqlite_journal
from qaportal.extensions import db

# Everything create_all makes or a test could change in the schema. Oids change when an
# object is dropped and made again, so a rebuilt object does not pass for the old one.
FINGERPRINT_SQL = """
SELECT md5(coalesce(string_agg(item, '|' ORDER BY item), '')) FROM (
  SELECT 'rel:' || c.oid || ':' || c.relname || ':' || c.relkind::text || ':' || c.relrowsecurity
         || ':' || coalesce(array_to_string(c.reloptions, ','), '') AS item
    FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'att:' || a.attrelid || ':' || a.attnum || ':' || a.attname || ':' || a.atttypid
         || ':' || a.atttypmod || ':' || a.attnotnull || ':' || a.atthasdef
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
   WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 'def:' || d.oid FROM pg_attrdef d JOIN pg_class c ON c.oid = d.adrelid
   WHERE c.relnamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'con:' || oid || ':' || conname || ':' || convalidated FROM pg_constraint
   WHERE connamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'trg:' || t.oid || ':' || t.tgname || ':' || t.tgenabled::text
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
   WHERE c.relnamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'fn:' || p.oid || ':' || md5(coalesce(p.prosrc, '')) FROM pg_proc p
   WHERE p.pronamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'rule:' || r.oid FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
   WHERE c.relnamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'pol:' || p.oid FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
   WHERE c.relnamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'type:' || t.oid FROM pg_type t WHERE t.typnamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'enum:' || e.oid FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
   WHERE t.typnamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'ns:' || nspname FROM pg_namespace
   WHERE left(nspname, 3) <> 'pg_' AND nspname <> 'information_schema'
  UNION ALL
  SELECT 'evt:' || oid || ':' || evtenabled::text FROM pg_event_trigger
  UNION ALL
  SELECT 'set:' || coalesce(array_to_string(setconfig, ','), '') FROM pg_db_role_setting s
   JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = current_database()
) AS catalog
"""

USED_SEQUENCES_SQL = (
    "SELECT quote_ident(sequencename), last_value FROM pg_sequences "
    "WHERE schemaname = 'public' AND last_value IS NOT NULL"
)


@dataclass(frozen=True)
class Built:
    """What a PostgreSQL schema looked like right after create_all."""

    fingerprint: str
    seeded: tuple[tuple[sa.Table, tuple[dict, ...]], ...]  # rows create_all inserted
    used_sequences: tuple[tuple[str, int], ...]  # sequences create_all itself advanced
    superuser: bool  # only a superuser may switch the triggers off for the deletes


_built: dict[str, Built] = {}  # by database URL
template_dir: Path | None = None  # the run's directory for the SQLite template (conftest)
_sqlite_template: Path | None = None


def _fingerprint(conn: sa.Connection) -> str:
    return conn.exec_driver_sql(FINGERPRINT_SQL).scalar_one()


def _rebuild_postgresql(url: str) -> None:
    db.drop_all()
    db.create_all()
    with db.engine.connect() as conn:
        seeded = []
        for table in db.metadata.sorted_tables:
            rows = tuple(dict(r._mapping) for r in conn.execute(sa.select(table)))
            if rows:
                seeded.append((table, rows))
        used = tuple(tuple(r) for r in conn.exec_driver_sql(USED_SEQUENCES_SQL))
        superuser = conn.exec_driver_sql(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").scalar_one()
        _built[url] = Built(_fingerprint(conn), tuple(seeded), used, superuser)


def _delete_rows(conn: sa.Connection, built: Built) -> None:
    quote = conn.dialect.identifier_preparer.format_table
    tables = db.metadata.sorted_tables
    if built.superuser:
        # The triggers (foreign keys too) do not fire for these deletes; far cheaper than a
        # TRUNCATE, which makes new files for every table it cascades to.
        # Names come from the models and the catalog (quote_ident), never from data.
        used = conn.exec_driver_sql(USED_SEQUENCES_SQL).scalars()
        deletes = "".join(f"DELETE FROM {quote(t)};" for t in reversed(tables))  # noqa: S608
        restarts = "".join(f"ALTER SEQUENCE {s} RESTART;" for s in used)
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica;" + deletes
                             + restarts + "SET LOCAL session_replication_role = origin")
    else:
        conn.exec_driver_sql(
            f"TRUNCATE {', '.join(quote(t) for t in tables)} RESTART IDENTITY CASCADE")
    for name, value in built.used_sequences:
        conn.exec_driver_sql(f"SELECT setval('{name}', {value})")
    for table, rows in built.seeded:
        conn.execute(table.insert(), list(rows))


def reset_postgresql(url: str) -> None:
    """Leave the current app's PostgreSQL database with an empty, freshly built schema."""
    built = _built.get(url)
    if built is not None:
        with db.engine.begin() as conn:
            if _fingerprint(conn) == built.fingerprint:
                _delete_rows(conn, built)
                return
    _rebuild_postgresql(url)


def reset_sqlite(path: Path) -> None:
    """Put an empty schema into the current app's SQLite file at path."""
    global _sqlite_template
    if not path.exists() and _sqlite_template is not None and _sqlite_template.exists():
        shutil.copyfile(_sqlite_template, path)
        return
    new_file = not path.exists()
    db.drop_all()
    db.create_all()
    if new_file and template_dir is not None:
        # The write-ahead log merged into the file and every connection closed: the main
        # file alone is the whole database before it is copied.
        with db.engine.connect() as conn:
            sqlite_journal.checkpoint(conn)
        db.engine.dispose()
        template = template_dir / "empty.sqlite"
        shutil.copyfile(path, template)
        _sqlite_template = template
