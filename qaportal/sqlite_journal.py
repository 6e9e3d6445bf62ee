"""The embedded SQLite database runs in write-ahead-log mode, durable on every commit.

Every SQLAlchemy connection to a SQLite *file* (not an in-memory database) is set to
`journal_mode=WAL` and `synchronous=FULL` when it opens. A commit then appends to the
`-wal` file and fsyncs it once (the default rollback journal costs several fsyncs per
commit: the journal, its folder, the database), so a committed transaction survives a
power loss exactly as before. Readers no longer block the writer, which suits the web
workers, the job worker and the listeners sharing one file.

WAL mode is recorded in the database file, so it stays on once set. Committed data may
live in `<file>-wal` until SQLite checkpoints it into the main file: copy the database only
with SQLite's backup (`sqlite3 FILE ".backup COPY"`) or after `checkpoint()`, never by
copying the main file of a database in use (docs/deployment.md, backups).
"""

from __future__ import annotations

import logging
import sqlite3

import sqlalchemy as sa

log = logging.getLogger(__name__)


def _main_file(cursor: sqlite3.Cursor) -> str:
    """The main database's file name ('' for an in-memory or temporary database)."""
    for _seq, name, file in cursor.execute("PRAGMA database_list"):
        if name == "main":
            return file or ""
    return ""


@sa.event.listens_for(sa.engine.Engine, "connect")
def _write_ahead_log(dbapi_connection, _connection_record) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    try:
        if not _main_file(cursor):
            return
        # FULL: the WAL is fsynced at each commit (NORMAL would only sync at checkpoints
        # and could lose the last commits at a power loss).
        cursor.execute("PRAGMA synchronous=FULL")
        try:
            mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:  # another connection holds the file locked
            mode = f"unchanged ({exc})"
        if str(mode).lower() != "wal":
            # Still durable (rollback journal), only slower; a read-only file or a
            # filesystem without shared memory lands here.
            log.warning("SQLite database stays in its journal mode: %s", mode)
    finally:
        cursor.close()


def checkpoint(connection: sa.Connection) -> None:
    """Merge the write-ahead log into the main database file and empty it, so that the
    main file alone holds every committed transaction (before copying it)."""
    if connection.dialect.name != "sqlite":
        return
    busy, _frames, _done = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
    if busy:
        raise RuntimeError("the SQLite write-ahead log could not be merged (a connection "
                           "is still reading or writing)")
