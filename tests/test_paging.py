"""Keyset pagination: walking a list page by page, forward and back, visits every row once
in the list's order, whatever the sort (ties, NULLs, mixed directions), on both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

from qaportal.models import Study
from qaportal.paging import Key, capped_count, keyset_page, parse_cursor
from tests.factories import make_study, make_user

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _world(db) -> list[int]:
    owner = make_user(["radiologist"])
    ids = []
    for i in range(23):
        # ties on created_at (pairs), NULL study dates every fourth, three modalities
        study = make_study(owner, modality=("CT", "MR", "US")[i % 3],
                           study_date=None if i % 4 == 0 else date(2025, 1, 1) + timedelta(i % 5),
                           created_at=T0 + timedelta(hours=i // 2))
        ids.append(study.id)
    db.session.commit()
    return ids


SORTS = {
    "created desc": [Key(Study.created_at, desc=True), Key(Study.id, desc=True)],
    "created asc": [Key(Study.created_at), Key(Study.id)],
    "date desc, nulls last": [Key(Study.study_date, desc=True, nullable=True),
                              Key(Study.id, desc=True)],
    "date asc, nulls last": [Key(Study.study_date, nullable=True), Key(Study.id)],
    "modality asc, created desc": [Key(Study.modalities), Key(Study.created_at, desc=True),
                                   Key(Study.id, desc=True)],
}


def _expected(rows: list[Study], keys: list[Key]) -> list[int]:
    """The order written out in Python: each key in turn, NULLs after every value."""
    def sort_key(s):
        parts = []
        for k in keys:
            v = getattr(s, k.expr.key)
            if isinstance(v, datetime):
                v = v.timestamp()
            elif isinstance(v, date):
                v = v.toordinal()
            elif isinstance(v, str):
                v = tuple(-ord(c) for c in v) if k.desc else tuple(ord(c) for c in v)
                parts.append((False, v))
                continue
            parts.append((v is None, 0 if v is None else (-v if k.desc else v)))
        return parts
    return [s.id for s in sorted(rows, key=sort_key)]


def test_forward_and_back_visit_every_row_once_in_order(db):
    _world(db)
    stmt = sa.select(Study)
    rows = db.session.scalars(stmt).all()
    for name, keys in SORTS.items():
        want = _expected(rows, keys)
        pages, cursor = [], None
        while True:
            page = keyset_page(db.session, stmt, keys, Study.id, cursor, size=5)
            pages.append([s.id for s in page.items])
            assert (page.newer is None) == (len(pages) == 1), name
            if page.older is None:
                break
            cursor = page.older
        assert [i for p in pages for i in p] == want, name
        assert [len(p) for p in pages] == [5, 5, 5, 5, 3], name
        # and back from the last page to the first, page by page
        back, cursor = [pages[-1]], page.newer
        while cursor:
            page = keyset_page(db.session, stmt, keys, Study.id, cursor, size=5)
            back.insert(0, [s.id for s in page.items])
            cursor = page.newer
        assert back == pages, name


def test_cursor_outside_the_filtered_list_starts_over(db):
    ids = _world(db)
    stmt = sa.select(Study).where(Study.modalities == "CT")
    keys = SORTS["created desc"]
    first = keyset_page(db.session, stmt, keys, Study.id, None, size=3)
    mr = next(i for i in ids if db.session.get(Study, i).modalities == "MR")
    again = keyset_page(db.session, stmt, keys, Study.id, f"n{mr}", size=3)
    assert [s.id for s in again.items] == [s.id for s in first.items]
    for junk in ("", "x1", "n0", "n-1", "n1; drop", "p" + "9" * 30):
        assert parse_cursor(junk) is None
        page = keyset_page(db.session, stmt, keys, Study.id, junk, size=3)
        assert [s.id for s in page.items] == [s.id for s in first.items]


def test_capped_count(db):
    _world(db)
    stmt = sa.select(Study)
    assert capped_count(db.session, stmt, cap=100) == (23, False)
    assert capped_count(db.session, stmt, cap=23) == (23, False)
    assert capped_count(db.session, stmt, cap=10) == (10, True)
