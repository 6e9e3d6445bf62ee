"""QIDO-RS matching keys (PS3.18 8.3.4, PS3.4 C.2.2.2): parsed once, applied in SQL or Python.

Each key is tested the same way in both places: in SQL on the stored columns of studies
served as stored, and in Python on the served (de-identified) values of studies served
de-identified, so a search never matches a value the caller cannot see.

- Universal matching: an empty value or `*` matches everything (the key is dropped).
- Single value: exact and case-sensitive, except person names (PN), which match
  case-insensitively on the whole name or on a run of its components (`smith` finds
  `SMITH^JOHN`, `john` too). `*` and `?` are wildcards in text and names.
- Lists: a backslash separates values that match any; UIDs and ModalitiesInStudy also
  take commas (UID list matching).
- Ranges: dates (`20240101-20241231`, `-20240101`, `20240101-`) and times likewise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

import sqlalchemy as sa
from flask import abort

from qaportal.dicomweb.qido_fields import Attr

_DATE_HELP = "a date YYYYMMDD or a range YYYYMMDD-YYYYMMDD, -YYYYMMDD or YYYYMMDD-"
_TIME_HELP = "a time HHMMSS (HH, HHMM allowed) or a range of them"


@dataclass(frozen=True)
class Key:
    """One matching key of a search: an attribute and the values any of which may match."""

    attr: Attr
    values: tuple[Any, ...]

    # -- Python, on served values ---------------------------------------------------------
    def test(self, value: Any) -> bool:
        """Tell whether a served value (a list for multi-valued attributes) matches."""
        if isinstance(value, (list, tuple, set, frozenset)):
            return any(self.test(v) for v in value)
        kind = self.attr.kind
        if kind in ("date", "time"):
            return value is not None and any(
                (lo is None or value >= lo) and (hi is None or value <= hi)
                for lo, hi in self.values)
        if kind == "int":
            return value is not None and value in self.values
        if kind == "uid":
            return value in self.values
        text = value or ""
        if kind == "pn":
            text = _pn_text(text)
            return any(r.fullmatch(text) for v in self.values for r in _pn_regexes(v))
        return any(_regex(v, False).fullmatch(text) if _wild(v) else text == v
                   for v in self.values)

    # -- SQL, on stored columns -----------------------------------------------------------
    def condition(self, column: Any, dialect: str) -> sa.ColumnElement[bool]:
        """Return the SQL condition of this key on a column (served as stored)."""
        kind = self.attr.kind
        if kind in ("date", "time"):
            return sa.or_(*[sa.and_(*([column >= lo] if lo is not None else []),
                                    *([column <= hi] if hi is not None else []),
                                    column.is_not(None))
                            for lo, hi in self.values])
        if kind in ("int", "uid"):
            return column.in_(list(self.values))
        if kind == "pn":
            name = sa.func.rtrim(sa.func.lower(column), "^")
            return sa.or_(*[name.like(_like(p), escape="\\")
                            for v in self.values for p in _pn_patterns(v.lower())])
        parts = []
        for v in self.values:
            if not _wild(v):
                parts.append(column == v)
            elif dialect == "sqlite":  # LIKE is case-insensitive there; GLOB is not
                parts.append(column.op("GLOB")(_glob(v)))
            else:
                parts.append(column.like(_like(v), escape="\\"))
        return sa.or_(*parts)


def parse_key(attr: Attr, raw: str) -> Key | None:
    """Parse one query value for an attribute; None for universal matching; 400 if invalid."""
    raw = raw.strip()
    if raw in ("", "*"):
        return None
    kind = attr.kind
    seps = r"[\\,]" if kind == "uid" or attr.keyword == "ModalitiesInStudy" else r"\\"
    items = [v.strip() for v in re.split(seps, raw)]
    if kind == "date":
        return Key(attr, tuple(_date_range(attr, v) for v in items if v))
    if kind == "time":
        return Key(attr, tuple(_time_range(attr, v) for v in items if v))
    if kind == "int":
        try:
            return Key(attr, tuple(int(v) for v in items if v))
        except ValueError:
            abort(400, description=f"{attr.keyword}: not an integer")
    items = [v for v in items if v]
    if kind == "pn":
        items = [v.split("=")[0].rstrip("^") for v in items]  # the alphabetic group
    if not items or any(v.strip("*") == "" for v in items):
        return None  # `*` among the values: everything matches
    return Key(attr, tuple(items))


# -- text and names -------------------------------------------------------------------------

def _wild(value: str) -> bool:
    return "*" in value or "?" in value


def _regex(pattern: str, fold: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if fold else 0))


def _like(pattern: str) -> str:
    out = []
    for c in pattern:
        if c in "%_\\":
            out.append("\\" + c)
        else:
            out.append("%" if c == "*" else "_" if c == "?" else c)
    return "".join(out)


def _glob(pattern: str) -> str:
    return "".join("[[]" if c == "[" else "[]]" if c == "]" else c for c in pattern)


def _pn_text(value: str) -> str:
    return value.split("=")[0].rstrip("^")


def _pn_patterns(pattern: str) -> list[str]:
    """The whole name, or a run of its components: P, P^*, *^P, *^P^*."""
    return [pattern, pattern + "^*", "*^" + pattern, "*^" + pattern + "^*"]


def _pn_regexes(pattern: str) -> list[re.Pattern[str]]:
    return [_regex(p, True) for p in _pn_patterns(pattern)]


# -- dates and times ------------------------------------------------------------------------

def _date(attr: Attr, text: str) -> date:
    try:
        if len(text) != 8 or not text.isdigit():
            raise ValueError(text)
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        abort(400, description=f"{attr.keyword}: expected {_DATE_HELP}")


def _date_range(attr: Attr, text: str) -> tuple[date | None, date | None]:
    if "-" not in text:
        day = _date(attr, text)
        return day, day
    lo, _, hi = text.partition("-")
    if not lo and not hi:
        abort(400, description=f"{attr.keyword}: expected {_DATE_HELP}")
    return (_date(attr, lo) if lo else None), (_date(attr, hi) if hi else None)


def _time(attr: Attr, text: str, upper: bool) -> time:
    digits, _, frac = text.partition(".")
    if len(digits) not in (2, 4, 6) or not digits.isdigit() or (frac and not frac.isdigit()):
        abort(400, description=f"{attr.keyword}: expected {_TIME_HELP}")
    fill = ("595959" if upper else "000000")[len(digits):]
    micro = (frac + ("999999" if upper else "000000"))[:6]
    try:
        return datetime.strptime(digits + fill + micro, "%H%M%S%f").time()
    except ValueError:
        abort(400, description=f"{attr.keyword}: expected {_TIME_HELP}")


def _time_range(attr: Attr, text: str) -> tuple[time | None, time | None]:
    lo, dash, hi = text.partition("-")
    if not dash:
        return _time(attr, lo, False), _time(attr, lo, True)
    if not lo and not hi:
        abort(400, description=f"{attr.keyword}: expected {_TIME_HELP}")
    return (_time(attr, lo, False) if lo else None), (_time(attr, hi, True) if hi else None)
