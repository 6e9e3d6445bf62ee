"""The permission matrix's world, built once per run and put back for every test.

Each of the matrix's ~1,000 tests needs the same world: one user per role and every matrix
object (studies imported from real files, opinions, reviews, cases, exports, tokens...).
Building it took most of each test's time. It is now built by the first test that needs
it, then copied aside: the database's rows (SQLite: the whole file; PostgreSQL: every
table's rows and sequence positions) and the instance folder (stored images, exports).
Every later test starts from an exact copy, with the same ids, files and audit chain, as
if it had built the world itself: a request that changes anything changes only its own
copy. The objects are handed back as rows loaded in the test's own session.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import current_app

from qaportal import sqlite_journal
from qaportal.extensions import db

SEQUENCES_SQL = ("SELECT quote_ident(sequencename), last_value FROM pg_sequences "
                 "WHERE schemaname = 'public' AND last_value IS NOT NULL")


@dataclass(frozen=True)
class Ref:
    """A mapped row of the world, by class and primary key."""

    model: type
    key: Any


@dataclass
class Snapshot:
    folder: Path  # the instance folder's copy (and SQLite's database file)
    users: dict[str, Ref]
    objects: dict[str, Any]  # Ref, or a plain value (an API token's secret)
    keys: dict[str, Any]  # the instance's own secrets the rows were written with
    rows: list[tuple[sa.Table, list[dict]]] | None = None  # PostgreSQL
    sequences: list[tuple[str, int]] | None = None  # PostgreSQL


_snapshots: dict[str, Snapshot] = {}  # by database backend
# The audit chain's MACs and the peers' secrets are under these keys (each test's instance
# makes its own): the test's app takes the world's. The job queue's file stays the test's.
KEYS = ("AUDIT_KEY", "FEEDS_KEY")
NOT_COPIED = shutil.ignore_patterns("jobs.sqlite*", "audit-key", "feeds-key")


def _ref(value: Any) -> Any:
    try:
        mapper = sa.inspect(type(value))
    except sa.exc.NoInspectionAvailable:
        return value
    return Ref(type(value), mapper.primary_key_from_instance(value)[0] if len(
        mapper.primary_key) == 1 else tuple(mapper.primary_key_from_instance(value)))


def _load(value: Any) -> Any:
    return db.session.get(value.model, value.key) if isinstance(value, Ref) else value


def world(build: Callable[[], tuple[dict, dict]]) -> tuple[dict, dict]:
    """Return (users, objects) of the matrix world in the current app's empty database:
    built by `build` (which commits) the first time, restored from its copy after."""
    backend = db.engine.url.get_backend_name()
    snap = _snapshots.get(backend)
    if snap is None:
        snap = _snapshots[backend] = _take(*build())
    else:
        _restore(snap)
    return ({k: _load(v) for k, v in snap.users.items()},
            {k: _load(v) for k, v in snap.objects.items()})


def _instance() -> Path:
    return Path(current_app.instance_path)


def _take(users: dict, objects: dict) -> Snapshot:
    folder = Path(tempfile.mkdtemp(prefix="qaportal-matrix-world-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)  # kept for the whole run
    snap = Snapshot(folder, {k: _ref(v) for k, v in users.items()},
                    {k: _ref(v) for k, v in objects.items()},
                    {k: current_app.config[k] for k in KEYS if k in current_app.config})
    db.session.commit()
    if db.engine.url.get_backend_name() == "sqlite":
        with db.engine.connect() as conn:
            sqlite_journal.checkpoint(conn)
        db.session.remove()
        db.engine.dispose()
        shutil.copyfile(db.engine.url.database, folder / "world.sqlite")
    else:
        with db.engine.connect() as conn:
            snap.rows = [(t, [dict(r._mapping) for r in conn.execute(sa.select(t))])
                         for t in db.metadata.sorted_tables]
            snap.sequences = [tuple(r) for r in conn.exec_driver_sql(SEQUENCES_SQL)]
    shutil.copytree(_instance(), folder / "instance", symlinks=True, ignore=NOT_COPIED)
    return snap


def _restore(snap: Snapshot) -> None:
    db.session.remove()
    if db.engine.url.get_backend_name() == "sqlite":
        db.engine.dispose()
        target = Path(db.engine.url.database)
        for extra in ("-wal", "-shm"):
            Path(f"{target}{extra}").unlink(missing_ok=True)
        shutil.copyfile(snap.folder / "world.sqlite", target)
    else:
        quote = db.engine.dialect.identifier_preparer.format_table
        tables = db.metadata.sorted_tables
        with db.engine.begin() as conn:
            # Triggers off (the append-only and immutable-row ones, foreign keys) for this
            # transaction only: the rows are put back exactly as they were.
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            conn.exec_driver_sql("".join(f"DELETE FROM {quote(t)};"  # noqa: S608
                                         for t in reversed(tables)))
            for table, rows in snap.rows or []:
                if rows:
                    conn.execute(table.insert(), rows)
            for name, value in snap.sequences or []:
                conn.exec_driver_sql(f"SELECT setval('{name}', {int(value)})")
            conn.exec_driver_sql("SET LOCAL session_replication_role = origin")
    shutil.copytree(snap.folder / "instance", _instance(), symlinks=True, dirs_exist_ok=True)
    current_app.config.update(snap.keys)
    current_app.extensions.pop("qaportal_audit_key_fingerprint", None)
