"""Migrations: `upgrade head` on an empty database matches the models; each revision goes
down and up again. Runs on SQLite, and on PostgreSQL when QAPORTAL_TEST_DATABASE_URL is set
(`make test` does both), each test in a database of its own.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade

from qaportal import create_app
from qaportal.extensions import db


@pytest.fixture
def empty_db_url(postgres_url, tmp_path):
    """Return the URL of an empty database on the run's backend, dropped afterwards."""
    if postgres_url is None:
        yield f"sqlite:///{tmp_path / 'migrations.sqlite'}"
        return
    server = sa.make_url(postgres_url)
    name = f"qaportal_mig_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def migrating_app(empty_db_url, tmp_path):
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": empty_db_url,
                      "SECRET_KEY": "x", "INSTANCE_PATH": str(tmp_path / "instance")})
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def _diff() -> list:
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, db.metadata)


def _revisions(app) -> list:
    config = app.extensions["migrate"].migrate.get_config()
    script = ScriptDirectory.from_config(config)
    return list(reversed(list(script.walk_revisions())))  # oldest first


def _tables() -> set[str]:
    return set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}


def test_upgrade_head_matches_the_models(migrating_app):
    upgrade()
    assert _diff() == []
    assert _tables() == set(db.metadata.tables)


def test_each_revision_goes_down_and_up(migrating_app):
    revisions = _revisions(migrating_app)
    assert [r.revision for r in revisions][:2] == ["0001", "0002"]
    for rev in revisions:
        upgrade(revision=rev.revision)
        tables = _tables()
        downgrade(revision=rev.down_revision or "base")
        if rev.down_revision is None:
            assert _tables() == set()
        upgrade(revision=rev.revision)
        assert _tables() == tables
    assert _diff() == []
    downgrade(revision="base")
    assert _tables() == set()


def test_migrated_database_keeps_the_audit_chain_append_only(migrating_app):
    from qaportal import audit

    upgrade()
    audit.record("test.migrated", actor_label="test")
    audit.record("test.migrated", actor_label="test")
    db.session.commit()
    assert audit.verify().count == 2 and audit.verify().ok
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        db.session.execute(sa.text("DELETE FROM audit_events"))
        db.session.commit()
    db.session.rollback()
