"""Keyset pagination for the long lists: no OFFSET, no exact count over the whole table.

A page is the next `size` rows after (or before) a boundary row in a fixed order whose last
key is unique (the row id). The cursor in the URL names only the boundary row's id and the
direction ("n123": after row 123, "p123": before it), never a sorted value, so a list sorted
by a patient's name or a date puts no patient data in a link. The boundary's key values are
read again through the same filtered statement, so an id the user cannot see (or that no
longer matches the filters) simply starts the list over.

Nullable keys sort NULLS LAST in both directions (`Key.nullable`), the same on PostgreSQL and
SQLite; non-null keys keep plain ASC/DESC so their indexes serve the order. Counts are capped
(`capped_count`): "more than 10,000" costs at most 10,001 index entries.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnElement

COUNT_CAP = 10_000
_CURSOR = re.compile(r"^([np])([1-9][0-9]{0,17})$")


@dataclass(frozen=True)
class Key:
    """One sort key: an expression, its direction, whether it may be NULL."""

    expr: ColumnElement
    desc: bool = False
    nullable: bool = False

    def order(self, reverse: bool = False) -> ColumnElement:
        desc = self.desc != reverse
        clause = self.expr.desc() if desc else self.expr.asc()
        if self.nullable:
            clause = clause.nulls_first() if reverse else clause.nulls_last()
        return clause


@dataclass
class Page:
    """One page of rows with the cursors of its neighbours (None: no such page)."""

    items: list
    newer: str | None  # the page before this one in the list's order
    older: str | None  # the page after it
    size: int

    @property
    def first(self) -> bool:
        return self.newer is None


def parse_cursor(text: str | None) -> tuple[str, int] | None:
    """("n" | "p", id) from a cursor parameter; None when absent or malformed."""
    match = _CURSOR.match(text or "")
    return (match.group(1), int(match.group(2))) if match else None


def _after(keys: Sequence[Key], values: Sequence[Any], reverse: bool) -> ColumnElement:
    """Rows strictly after the boundary in the keys' order (before it when reverse)."""
    alternatives = []
    equal_so_far: list[ColumnElement] = []
    for key, value in zip(keys, values, strict=True):
        desc = key.desc != reverse
        nulls_after = not reverse  # NULLS LAST forward, so NULLS FIRST when reversed
        if value is None:
            # forward: only NULLs come after NULL (handled by later keys); reversed: every
            # non-NULL value comes "after" (it sorted before the NULLs).
            beyond = key.expr.is_not(None) if not nulls_after else sa.false()
            same = key.expr.is_(None)
        else:
            beyond = key.expr < value if desc else key.expr > value
            if key.nullable and nulls_after:
                beyond = sa.or_(beyond, key.expr.is_(None))
            same = key.expr == value
        alternatives.append(sa.and_(*equal_so_far, beyond))
        equal_so_far.append(same)
    return sa.or_(*alternatives)


def _leading_bound(keys: Sequence[Key], values: Sequence[Any], reverse: bool) -> ColumnElement:
    """A range on the first key that every row after the boundary satisfies.

    Redundant with `_after`, but a plain range the planner can put in an index condition:
    without it PostgreSQL may answer the OR of `_after` with a bitmap of two index scans and
    a sort of every matching row instead of reading the index in order from the boundary.
    """
    key, value = keys[0], values[0]
    if value is None:
        return key.expr.is_(None) if not reverse else sa.true()
    desc = key.desc != reverse
    bound = key.expr <= value if desc else key.expr >= value
    if key.nullable and not reverse:  # NULLs sort last, so they come after every value
        bound = sa.or_(bound, key.expr.is_(None))
    return bound


def fixed_limit(n: int) -> ColumnElement:
    """A LIMIT written into the statement's text instead of bound as a parameter.

    psycopg prepares a statement run five times on a connection; PostgreSQL then plans it
    once for every run (a generic plan) only when that plan costs no more than the plans
    made for each run's values, and with the LIMIT unknown it never does. A list page's
    statement, with its rows' related rows joined in, took 11-16 ms to plan and 1-2 ms to
    run at stage B of benchmarks/scale.py, at every request.
    """
    return sa.literal_column(str(int(n)))


def keyset_page(session: Session, stmt: sa.Select, keys: Sequence[Key], id_col: ColumnElement,
                cursor: str | None, size: int, options: Sequence = ()) -> Page:
    """The page of stmt's rows named by cursor (the first page when None or unusable).

    keys must end with id_col (unique), so the order is total.
    """
    base = stmt.order_by(None)
    parsed = parse_cursor(cursor)
    values = None
    if parsed is not None:
        values = session.execute(
            base.with_only_columns(*[k.expr for k in keys]).where(id_col == parsed[1])
            .limit(fixed_limit(1))).first()
    if values is None:  # first page
        rows = session.scalars(base.order_by(*[k.order() for k in keys])
                               .limit(fixed_limit(size + 1)).options(*options)).all()
        return _page(rows, size, backward=False, from_cursor=False, id_of=_id_getter(id_col))
    backward = parsed[0] == "p"
    q = (base.where(_leading_bound(keys, tuple(values), backward),
                    _after(keys, tuple(values), reverse=backward))
         .order_by(*[k.order(reverse=backward) for k in keys]).limit(fixed_limit(size + 1))
         .options(*options))
    rows = session.scalars(q).all()
    return _page(rows, size, backward=backward, from_cursor=True, id_of=_id_getter(id_col))


def _id_getter(id_col: ColumnElement):
    name = id_col.key
    return lambda row: getattr(row, name)


def _page(rows: list, size: int, *, backward: bool, from_cursor: bool, id_of) -> Page:
    more = len(rows) > size
    rows = list(rows[:size])
    if backward:
        rows.reverse()
    if not rows:
        return Page([], None, None, size)
    # Going forward there is a page before whenever we came from a cursor; going backward
    # there is one after (the boundary row we came from is on it).
    has_newer = more if backward else from_cursor
    has_older = True if backward else more
    return Page(rows, f"p{id_of(rows[0])}" if has_newer else None,
                f"n{id_of(rows[-1])}" if has_older else None, size)


def capped_count(session: Session, stmt: sa.Select, cap: int = COUNT_CAP) -> tuple[int, bool]:
    """(count, capped): the number of stmt's rows, or (cap, True) when there are more."""
    inner = stmt.order_by(None).limit(fixed_limit(cap + 1)).subquery()
    n = session.scalar(sa.select(sa.func.count()).select_from(inner)) or 0
    return (cap, True) if n > cap else (n, False)
