"""The audit log's filters and CSV rows, shared by the page, the streamed CSV and the
background export (qaportal.exports)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from qaportal.models import AuditEvent

CSV_COLUMNS = ["seq", "occurred_at", "actor_id", "actor_label", "action", "object_type",
               "object_id", "source_ip", "details", "prev_hash", "entry_hash"]
FILTERS = ("actor", "action", "object_type", "object_id", "date_from", "date_to")


def _day(value: Any) -> date | None:
    if value in (None, ""):
        return None
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def filtered(filters: dict[str, Any]) -> sa.Select:
    """Entries matching the filters (text values stripped; dates as date or ISO text)."""
    stmt = sa.select(AuditEvent)
    text = {k: str(filters.get(k) or "").strip() for k in FILTERS[:4]}
    if text["actor"]:
        stmt = stmt.where(AuditEvent.actor_label.ilike(f"%{text['actor']}%"))
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


def csv_value(ev: AuditEvent, column: str) -> str:
    """One cell: details as sorted JSON, times in ISO 8601, formulas defused."""
    value = getattr(ev, column)
    if column == "details":
        return json.dumps(value, sort_keys=True)
    if isinstance(value, datetime):
        return value.isoformat()
    text = "" if value is None else str(value)
    # Keep spreadsheet programs from evaluating cells as formulas.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_lines(events: Iterable[AuditEvent]) -> Iterator[str]:
    """The CSV text: the header, then one line per entry."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for ev in events:
        writer.writerow([csv_value(ev, c) for c in CSV_COLUMNS])
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    yield buf.getvalue()
