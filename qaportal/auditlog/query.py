"""The audit log's filters and CSV rows, shared by the page, the streamed CSV and the
background export (qaportal.exports).

The actor filter matches a part of the entry's actor label (the e-mail at the time, or
"cli", "anonymous", an e-mail typed at a failed sign-in), whoever it names today. A log
holds few distinct labels and millions of entries, so the labels that match are found
first, by skipping through the index on (actor_label, seq) one label at a time
(`matching_labels`, a query of one index probe per distinct label), and the entries are
then read by label from that same index, newest first, counted from it too (migration
0025). Matching each entry's label with ILIKE instead read and counted them by a scan of
the whole table.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import operator
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import AuditEvent

CSV_COLUMNS = ["seq", "occurred_at", "actor_id", "actor_label", "action", "object_type",
               "object_id", "source_ip", "details", "prev_hash", "entry_hash"]
FILTERS = ("actor", "action", "object_type", "object_id", "date_from", "date_to")


def _day(value: Any) -> date | None:
    if value in (None, ""):
        return None
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def matching_labels(text: str) -> list[str]:
    """The distinct actor labels in the log that contain text (ILIKE, as ever: any case,
    and % or _ in the text match as wildcards), sorted.

    A recursive query steps from one label to the next through the index on
    (actor_label, seq): one probe per distinct label, not one row per entry.
    """
    ae = AuditEvent.__table__.c
    first = (sa.select(ae.actor_label.label("label")).order_by(ae.actor_label).limit(1)
             .subquery())
    labels = sa.select(first.c.label).cte("labels", recursive=True)
    following = (sa.select(ae.actor_label).where(ae.actor_label > labels.c.label)
                 .order_by(ae.actor_label).limit(1).scalar_subquery())
    labels = labels.union_all(sa.select(following).where(labels.c.label.is_not(None)))
    return list(db.session.scalars(
        sa.select(labels.c.label).where(labels.c.label.is_not(None),
                                        labels.c.label.ilike(f"%{text}%"))
        .order_by(labels.c.label)))


def filtered(filters: dict[str, Any]) -> sa.Select:
    """Entries matching the filters (text values stripped; dates as date or ISO text).

    An actor text is resolved to the labels it matches now (one query), so the statement
    names them (actor_label IN ...), and it can be read from the label index.
    """
    stmt = sa.select(AuditEvent)
    text = {k: str(filters.get(k) or "").strip() for k in FILTERS[:4]}
    if text["actor"]:
        labels = matching_labels(text["actor"])
        stmt = stmt.where(AuditEvent.actor_label.in_(labels) if labels else sa.false())
    if text["action"]:
        stmt = stmt.where(AuditEvent.action.like(f"{text['action']}%"))
    if text["object_type"]:
        stmt = stmt.where(AuditEvent.object_type == text["object_type"])
    if text["object_id"]:
        stmt = stmt.where(AuditEvent.object_id == text["object_id"])
    if (first := _day(filters.get("date_from"))) is not None:
        stmt = stmt.where(AuditEvent.occurred_at >= datetime.combine(first, time.min, UTC))
    if (last := _day(filters.get("date_to"))) is not None:
        end = datetime.combine(last + timedelta(days=1), time.min, UTC)
        stmt = stmt.where(AuditEvent.occurred_at < end)
    return stmt


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_value(ev: Any, column: str) -> str:
    """One cell: details as sorted JSON, times in ISO 8601, formulas defused."""
    value = getattr(ev, column)
    if column == "details":
        return json.dumps(value, sort_keys=True)
    if isinstance(value, datetime):
        return value.isoformat()
    text = "" if value is None else str(value)
    # Keep spreadsheet programs from evaluating cells as formulas.
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_columns(stmt: sa.Select) -> sa.Select:
    """stmt (over AuditEvent) reading only the CSV's columns, as plain rows: no entity is
    built (nor kept in the session) per entry of a long export. details comes as the
    database's JSON text, the text the driver would decode (see _sorted_details)."""
    table = AuditEvent.__table__
    return stmt.with_only_columns(*[
        sa.cast(table.c.details, sa.Text).label("details") if c == "details" else table.c[c]
        for c in CSV_COLUMNS])


def _defused(text: str | None) -> str:
    if text is None:
        return ""
    return "'" + text if text.startswith(_FORMULA_START) else text


_FIELDS = operator.attrgetter(*CSV_COLUMNS)
_SORTED_JSON = json.JSONEncoder(sort_keys=True).encode  # json.dumps(v, sort_keys=True)


@functools.lru_cache(maxsize=4096)
def _sorted_details(text: str | None) -> str:
    """The details cell from the stored JSON text: decoded as the driver decodes it
    (json.loads) and written sorted, once per distinct text. A log repeats few shapes:
    two days of a large department's entries (9,788) hold 61 distinct texts."""
    return _SORTED_JSON(None if text is None else json.loads(text))


def csv_cells(ev: Any) -> tuple:
    """One entry's cells as csv_value gives them, in CSV_COLUMNS' order, without a call
    per cell: the ids are integers (never a formula), the hashes hex. ev is an AuditEvent
    or a row of the CSV_COLUMNS in their order with details as JSON text (csv_columns)."""
    if isinstance(ev, sa.Row):  # details as stored text (csv_columns)
        (seq, occurred_at, actor_id, actor_label, action, object_type, object_id, source_ip,
         details, prev_hash, entry_hash) = ev
        details_cell = _sorted_details(details)
    else:
        (seq, occurred_at, actor_id, actor_label, action, object_type, object_id, source_ip,
         details, prev_hash, entry_hash) = _FIELDS(ev)
        details_cell = _SORTED_JSON(details)
    return (seq, occurred_at.isoformat(), "" if actor_id is None else actor_id,
            _defused(actor_label), _defused(action), _defused(object_type),
            _defused(object_id), _defused(source_ip), details_cell,
            _defused(prev_hash), _defused(entry_hash))


def csv_lines(events: Iterable[Any]) -> Iterator[str]:
    """The CSV text: the header, then one line per entry (AuditEvent or a row with the
    CSV_COLUMNS as attributes); the header comes with the first entry's line."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for ev in events:
        writer.writerow(csv_cells(ev))
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    yield buf.getvalue()


def csv_chunks(events: Iterable[Any], rows: int = 500) -> Iterator[str]:
    """The same text as csv_lines in pieces of `rows` entries: a streamed response sends
    each piece it is given as a write of its own (one per entry was 5,000 writes for two
    days of a large department's log)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    batch: list[tuple] = []
    for ev in events:
        batch.append(csv_cells(ev))
        if len(batch) >= rows:
            writer.writerows(batch)
            batch.clear()
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    writer.writerows(batch)
    yield buf.getvalue()
