"""Migration 0012 on a database with data: study identity per owner, upload grants revoked."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from qaportal.extensions import db
from tests.test_migrations import empty_db_url, migrating_app  # noqa: F401 - fixtures


def _filler(column: sa.Column):
    """Return a value for a NOT NULL column of any type (the rows only need to exist)."""
    t = column.type
    if isinstance(t, sa.Boolean):
        return False
    if isinstance(t, sa.Integer):
        return 0
    if isinstance(t, sa.DateTime):
        return dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    if isinstance(t, sa.Date):
        return dt.date(2026, 1, 1)
    if isinstance(t, sa.JSON):
        return []
    return "x"


def _insert(conn, table: str, **values) -> int:
    """Insert a row into a reflected table, filling the NOT NULL columns not given."""
    tbl = sa.Table(table, sa.MetaData(), autoload_with=conn)
    row = {c.name: _filler(c) for c in tbl.columns
           if not c.nullable and not c.primary_key and c.name not in values}
    row.update(values)
    return conn.execute(tbl.insert().values(**row).returning(tbl.c.id)).scalar_one()


@pytest.mark.usefixtures("migrating_app")
def test_upload_grants_are_revoked_and_two_owners_may_share_a_study_uid():
    upgrade(revision="0008")
    with db.engine.begin() as conn:
        owner = _insert(conn, "users", email="owner@m.test", session_version=1)
        other = _insert(conn, "users", email="other@m.test", session_version=1)
        study = _insert(conn, "studies", study_uid="2.25.42", owner_id=owner,
                        pseudonym="QA-OWNER")
        for source in ("upload_batch", "review_assignment"):
            _insert(conn, "study_access", study_id=study, user_id=other, mode="full",
                    source_type=source, source_id=7, revoked_at=None)
    upgrade()
    with db.engine.begin() as conn:
        grants = dict(conn.execute(sa.text(
            "SELECT source_type, revoked_at IS NULL FROM study_access")).all())
        assert {k: bool(v) for k, v in grants.items()} == {"upload_batch": False,
                                                           "review_assignment": True}
        copy = _insert(conn, "studies", study_uid="2.25.42", owner_id=other,
                       pseudonym="QA-OTHER")
        for sid in (study, copy):  # the same series and SOP UIDs in each owner's study
            series = _insert(conn, "series", study_id=sid, series_uid="2.25.43")
            _insert(conn, "instances", series_id=series, sop_uid="2.25.44",
                    storage_key=f"key{sid}", sha256="0" * 64, size_bytes=1)
    with db.engine.connect() as conn, pytest.raises(sa.exc.IntegrityError):
        _insert(conn, "studies", study_uid="2.25.42", owner_id=other, pseudonym="QA-DUP")
