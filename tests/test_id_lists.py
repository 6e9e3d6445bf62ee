"""One statement text for any number of listed studies (qaportal/id_lists.py): the blind
roles and grants a list page prefetches are asked with `= ANY(:ids)` on PostgreSQL, so the
statement is prepared and planned once, and give the same pairs as before on both
databases."""

from __future__ import annotations

import sqlalchemy as sa

from qaportal.blind_roles import blind_pairs, non_blind_pairs
from qaportal.id_lists import in_ids
from qaportal.models import Study
from tests.factories import make_assignment, make_study, make_user


def _statements(db, call) -> list[str]:
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", before)
    try:
        call()
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)
    return seen


def test_blind_pairs_keep_their_answer_and_one_text_on_postgresql(db):
    uploader = make_user(["radiologist"])
    reader = make_user(["radiologist"])
    reviewer = make_user(["reviewer", "radiologist"])
    studies = [make_study(uploader, reader=reader) for _ in range(5)]
    for study in studies[:3]:
        make_assignment(study.read, reviewer)
    db.session.commit()
    ids = [s.id for s in studies]

    assert blind_pairs(ids) == {(s.id, reviewer.id) for s in studies[:3]}
    assert blind_pairs(ids, reviewer.id) == {(s.id, reviewer.id) for s in studies[:3]}
    assert blind_pairs(ids, reader.id) == set()
    assert {(s.id, reader.id) for s in studies} <= non_blind_pairs(ids)
    assert blind_pairs([]) == set()

    two = _statements(db, lambda: blind_pairs(ids[:2], reviewer.id))
    five = _statements(db, lambda: blind_pairs(ids, reviewer.id))
    assert len(two) == len(five) == 1
    if db.engine.dialect.name == "postgresql":
        assert two == five and "ANY" in five[0]
    else:  # SQLite keeps IN, one parameter per id
        assert two != five and " IN " in five[0]


def test_in_ids_selects_the_same_rows_as_in(db):
    owner = make_user(["radiologist"])
    studies = [make_study(owner) for _ in range(4)]
    db.session.commit()
    wanted = [studies[0].id, studies[2].id, studies[2].id, 10**6]
    got = set(db.session.scalars(sa.select(Study.id).where(in_ids(Study.id, wanted))))
    assert got == {studies[0].id, studies[2].id}
    assert set(db.session.scalars(sa.select(Study.id).where(in_ids(Study.id, [])))) == set()
