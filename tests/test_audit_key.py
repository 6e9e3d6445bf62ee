"""Every server signs the audit chain with one key: the database keeps the key's
fingerprint (never the key); a portal or worker started with another key refuses to start,
and no entry is ever written under another key. SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from qaportal import audit, audit_key, create_app
from qaportal.extensions import db as _db
from qaportal.models import AuditEvent, AuditHead
from tests.conftest import FAST_HASHING, make_test_app

KEY = "a" * 64
OTHER = "b" * 64


def _config(tmp_path, db_url: str, key: str) -> dict:
    """A server's settings on the shared database, with the start-up check on."""
    return {"TESTING": True, "INSTANCE_PATH": str(tmp_path / "instance"),
            "SQLALCHEMY_DATABASE_URI": db_url, "SECRET_KEY": "test-secret-key",
            "LOCAL": True, "AUDIT_KEY": key, "AUDIT_KEY_CHECK": True, **FAST_HASHING}


def _stored(app) -> str | None:
    with app.app_context():
        return _db.session.scalar(sa.select(AuditHead.key_fingerprint))


def _close(*apps) -> None:
    for app in apps:
        with app.app_context():
            _db.session.remove()
            _db.engine.dispose()


@pytest.fixture
def fresh(tmp_path, db_url):
    """An empty database with no fingerprint yet (the schema's first start)."""
    app = make_test_app(tmp_path / "setup", db_url, AUDIT_KEY=KEY)
    assert _stored(app) is None
    yield app
    _close(app)


def test_first_start_records_the_fingerprint_and_the_same_key_starts_again(
        fresh, tmp_path, db_url):
    first = create_app(_config(tmp_path / "a", db_url, KEY))
    stored = _stored(first)
    assert stored == audit_key.fingerprint(KEY) and len(stored) == 64
    assert KEY not in stored and audit_key.fingerprint(OTHER) != stored
    second = create_app(_config(tmp_path / "b", db_url, KEY))  # another server, same key
    assert _stored(second) == stored
    with second.app_context():
        assert audit_key.check(second) == "matches"
    _close(first, second)


def test_another_key_refuses_to_start_naming_the_setting_not_the_key(
        fresh, tmp_path, db_url):
    first = create_app(_config(tmp_path / "a", db_url, KEY))
    with pytest.raises(audit_key.AuditKeyMismatch) as refused:
        create_app(_config(tmp_path / "b", db_url, OTHER))
    message = str(refused.value)
    assert "QAPORTAL_AUDIT_KEY" in message
    for secret in (KEY, OTHER, KEY[:16], OTHER[:16], audit_key.fingerprint(KEY),
                   audit_key.fingerprint(OTHER)):
        assert secret not in message
    assert _stored(first) == audit_key.fingerprint(KEY)  # unchanged
    _close(first)


def test_no_entry_is_written_under_another_key(fresh, tmp_path, db_url):
    """A process that skipped the start-up check (a CLI command) still cannot write."""
    other = make_test_app(tmp_path / "other", db_url, AUDIT_KEY=OTHER)  # (empties it)
    with fresh.app_context():
        audit.record("test.first", actor_label="test")  # the first entry records the key
        _db.session.commit()
    assert _stored(fresh) == audit_key.fingerprint(KEY)
    with other.app_context():
        with pytest.raises(audit_key.AuditKeyMismatch):
            audit.record("test.other", actor_label="test")
        _db.session.rollback()
        assert _db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 1
        assert _db.session.scalar(sa.select(AuditHead.seq)) == 1
    with fresh.app_context():
        assert audit.verify().ok
    _close(other)


def test_the_worker_refuses_another_key(fresh, tmp_path, db_url):
    other = make_test_app(tmp_path / "other", db_url, AUDIT_KEY=OTHER)  # (empties it)
    first = create_app(_config(tmp_path / "a", db_url, KEY))
    result = other.test_cli_runner().invoke(args=["worker", "--no-periodic"])
    assert result.exit_code == 3, result.output
    assert "QAPORTAL_AUDIT_KEY" in result.output
    assert OTHER not in result.output and KEY not in result.output
    _close(first, other)


def test_an_unmigrated_database_is_left_to_db_upgrade(tmp_path):
    """Before migration 0022 there is nowhere to keep the fingerprint: `db upgrade` runs."""
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE audit_head (id INTEGER PRIMARY KEY, seq BIGINT, "
                             "entry_hash VARCHAR(64))")
    engine.dispose()
    app = create_app(_config(tmp_path, url, KEY))
    with app.app_context():
        assert audit_key.check(app) == "unchecked"
    _close(app)
