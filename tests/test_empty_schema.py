"""Each test's app starts on an empty schema, whatever the test before it left behind."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from qaportal import audit
from qaportal.audit import GENESIS
from qaportal.extensions import db
from qaportal.models import AuditEvent, AuditHead, User
from qaportal.models.audit import DROP_TRIGGERS
from tests.conftest import make_test_app
from tests.factories import make_user


def _leave_rows_behind(app) -> None:
    with app.app_context():
        make_user(roles=("radiologist",))
        make_user(roles=("admin",))
        db.session.commit()
        db.session.execute(sa.update(AuditHead).values(seq=7, entry_hash="f" * 64))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()


def test_rows_and_sequences_left_by_an_earlier_app_are_gone(tmp_path, db_url):
    _leave_rows_behind(make_test_app(tmp_path, db_url))
    app = make_test_app(tmp_path, db_url)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0
        head = db.session.scalars(sa.select(AuditHead)).one()
        assert (head.id, head.seq, head.entry_hash) == (1, 0, GENESIS)
        user = make_user(roles=("radiologist",))
        db.session.commit()
        assert user.id == 1  # numbering starts again, as in a new database
        db.session.remove()
        db.engine.dispose()


def test_a_trigger_dropped_by_an_earlier_test_is_back(tmp_path, db_url):
    app = make_test_app(tmp_path, db_url)
    with app.app_context():
        make_user(roles=("radiologist",))
        db.session.commit()
        for stmt in DROP_TRIGGERS[db.engine.dialect.name]:
            db.session.execute(sa.text(stmt))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    app = make_test_app(tmp_path, db_url)
    with app.app_context():
        user = make_user(roles=("radiologist",))
        audit.record("test.event", user, actor=user)
        db.session.commit()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 1
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            db.session.execute(sa.text("DELETE FROM audit_events"))
            db.session.flush()
        db.session.rollback()
        db.session.remove()
        db.engine.dispose()


def _sqlite_schema(app) -> list[tuple]:
    with app.app_context():
        with db.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").all()
            head = conn.exec_driver_sql("SELECT id, seq, entry_hash FROM audit_head").all()
        db.engine.dispose()
    return [tuple(r) for r in rows] + [tuple(r) for r in head]


def test_a_new_sqlite_file_has_the_schema_create_all_makes(tmp_path):
    copied = make_test_app(tmp_path / "a", f"sqlite:///{tmp_path / 'copied.sqlite'}")
    built = make_test_app(tmp_path / "b", f"sqlite:///{tmp_path / 'built.sqlite'}")
    with built.app_context():
        db.drop_all()
        db.create_all()
        db.engine.dispose()
    assert _sqlite_schema(copied) == _sqlite_schema(built)
    assert len(_sqlite_schema(copied)) > 40
