"""The embedded SQLite database in write-ahead-log mode, durable on each commit."""

from __future__ import annotations

import shutil
import sqlite3

import sqlalchemy as sa

from qaportal import sqlite_journal
from qaportal.extensions import db
from qaportal.models import User
from tests import empty_schema
from tests.conftest import make_test_app
from tests.factories import make_user


def _pragmas(conn) -> tuple[str, int]:
    return (conn.exec_driver_sql("PRAGMA journal_mode").scalar_one(),
            conn.exec_driver_sql("PRAGMA synchronous").scalar_one())


def test_a_new_app_on_a_sqlite_file_runs_in_wal_mode_with_full_sync(tmp_path):
    app = make_test_app(tmp_path, f"sqlite:///{tmp_path / 'portal.sqlite'}")
    with app.app_context():
        try:
            with db.engine.connect() as conn:
                assert _pragmas(conn) == ("wal", 2)  # 2: FULL, the WAL fsynced per commit
            # every new connection, not only the first
            with db.engine.connect() as a, db.engine.connect() as b:
                assert _pragmas(a) == _pragmas(b) == ("wal", 2)
        finally:
            db.session.remove()
            db.engine.dispose()
    # recorded in the file: another program opening it sees WAL mode too
    plain = sqlite3.connect(tmp_path / "portal.sqlite")
    try:
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        plain.close()


def test_an_in_memory_database_keeps_its_own_mode():
    engine = sa.create_engine("sqlite://")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "memory"
    finally:
        engine.dispose()


def test_a_copy_of_the_main_file_after_a_checkpoint_holds_every_commit(tmp_path):
    path = tmp_path / "portal.sqlite"
    app = make_test_app(tmp_path, f"sqlite:///{path}")
    with app.app_context():
        try:
            make_user(email="kept@example.test")
            db.session.commit()
            with db.engine.connect() as reader:  # a connection left open, as in a server
                reader.exec_driver_sql("SELECT 1").all()
                # the commit is in the log, not yet in the main file
                assert (tmp_path / "portal.sqlite-wal").stat().st_size > 0
                with db.engine.connect() as conn:
                    sqlite_journal.checkpoint(conn)
                assert (tmp_path / "portal.sqlite-wal").stat().st_size == 0
                shutil.copyfile(path, tmp_path / "copy.sqlite")
        finally:
            db.session.remove()
            db.engine.dispose()
    copy = sqlite3.connect(tmp_path / "copy.sqlite")
    try:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        emails = {r[0] for r in copy.execute(f"SELECT email FROM {User.__tablename__}")}  # noqa: S608
        assert "kept@example.test" in emails
    finally:
        copy.close()


def test_the_test_template_is_a_whole_database(tmp_path):
    """Each test's SQLite file is a copy of the run's template main file: it must hold the
    whole schema and its seeded rows with no write-ahead log beside it."""
    make_test_app(tmp_path, f"sqlite:///{tmp_path / 'first.sqlite'}")  # template exists now
    template = empty_schema._sqlite_template
    assert template is not None and template.exists()
    assert not template.with_name(template.name + "-wal").exists()
    conn = sqlite3.connect(f"file:{template}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert set(db.metadata.tables) <= tables
        assert conn.execute("SELECT count(*) FROM audit_head").fetchone()[0] == 1
    finally:
        conn.close()
