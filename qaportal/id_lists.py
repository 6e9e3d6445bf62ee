"""`column IN (ids)` written so that PostgreSQL sees one statement text for any list length.

SQLAlchemy writes `IN (:a, :b, ...)` with one parameter per id, so a list page's statement
text changes with the number of rows on the page: psycopg never reuses (prepares) it and
PostgreSQL plans it again at every request. On PostgreSQL `column = ANY(:ids)` with one
array parameter has the same meaning and one text; other databases keep `IN`.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from qaportal.extensions import db


def in_ids(column: sa.ColumnElement, ids: Iterable[int]) -> sa.ColumnElement[bool]:
    """`column IN ids` for integer ids, as `column = ANY(:array)` on PostgreSQL."""
    values = sorted({int(i) for i in ids})
    if db.session.get_bind().dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, values,
                                              type_=postgresql.ARRAY(sa.Integer)))
    return column.in_(values)
