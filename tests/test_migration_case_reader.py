"""Migration 0015 on a database with data: each discrepancy case gets its read's reader."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from qaportal.extensions import db
from tests.test_migration_study_identity import _insert
from tests.test_migrations import empty_db_url, migrating_app  # noqa: F401 - fixtures


def _case_for(conn, reader: int, reviewer: int, n: int) -> int:
    study = _insert(conn, "studies", study_uid=f"2.25.{n}", owner_id=reader,
                    pseudonym=f"QA-{n}")
    read = _insert(conn, "original_reads", study_id=study, reader_id=reader,
                   entered_by_id=reader)
    assignment = _insert(conn, "review_assignments", read_id=read, reviewer_id=reviewer,
                         source="adhoc", status="submitted")
    review = _insert(conn, "reviews", assignment_id=assignment, score="1")
    return _insert(conn, "discrepancy_cases", review_id=review, status="open", round=1)


@pytest.mark.usefixtures("migrating_app")
def test_cases_get_the_reader_of_their_read():
    upgrade(revision="0016")
    with db.engine.begin() as conn:
        users = [_insert(conn, "users", email=f"u{i}@m.test", session_version=1)
                 for i in range(3)]
        first = _case_for(conn, users[0], users[2], 1)
        second = _case_for(conn, users[1], users[2], 2)
    upgrade(revision="0017")
    with db.engine.begin() as conn:
        readers = dict(conn.execute(sa.text(
            "SELECT id, reader_id FROM discrepancy_cases")).all())
    assert readers == {first: users[0], second: users[1]}
    downgrade(revision="0016")
    with db.engine.begin() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("discrepancy_cases")}
    assert "reader_id" not in columns
