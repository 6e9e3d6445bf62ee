"""The audit log's actor filter (labels resolved first, read by label) and the CSV pieces
keep the results and the text they gave before (qaportal/auditlog/query.py)."""

from __future__ import annotations

import csv
import io

import sqlalchemy as sa

from qaportal import audit
from qaportal.auditlog import query
from qaportal.models import AuditEvent
from tests.test_audit import _browse_setup


def _labels(filters: dict) -> list[str]:
    from qaportal.extensions import db

    return [e.actor_label for e in db.session.scalars(query.filtered(filters)
                                                       .order_by(AuditEvent.seq))]


def test_actor_filter_matches_part_of_any_label_in_any_case(app, db):
    _browse_setup(db)
    audit.record("auth.login_failed", actor_label="gone@example.test", reason="x")
    db.session.commit()
    assert _labels({"actor": "BOB"}) == ["bob@example.test"]
    assert _labels({"actor": "ALICE@example"}) == ["alice@example.test"] * 2
    # a label no account has (a failed sign-in, a deleted account): matched as before
    assert _labels({"actor": "gone@"}) == ["gone@example.test"]
    assert _labels({"actor": "example.test"}) == [
        "alice@example.test", "bob@example.test", "alice@example.test", "gone@example.test"]
    assert _labels({"actor": "nobody"}) == []
    assert query.matching_labels("hyperlink") == ['=HYPERLINK("http://evil.test")']


def test_csv_pieces_are_the_text_of_csv_value(app, db):
    _browse_setup(db)
    audit.record("odd", actor_label="+sum", details={"b": 1, "a": {"z": None, "c": [1]}})
    # the CSV reads details as the stored JSON text and sorts each distinct text once: the
    # same cells as decoding every entry, for any key order, number, escape or repeat
    for details in ({"z": 1.5, "y": 10**20, "x": -0.0, "w": 1e-7, "v": True},
                    {"é": "naïve \"quoted\"\nline", "emoji": "\U0001f600", "\t": ""},
                    {}, {"n": [None, {"b": [], "a": {}}]}, {"b": 1, "a": 2}, {"a": 2, "b": 1}):
        audit.record("odd", details=details)
        audit.record("odd", details=details)
    db.session.commit()
    events = db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq)).all()
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(query.CSV_COLUMNS)
    for ev in events:
        writer.writerow([query.csv_value(ev, c) for c in query.CSV_COLUMNS])
    rows = db.session.connection().execute(
        query.csv_columns(sa.select(AuditEvent).order_by(AuditEvent.seq))).all()
    assert "".join(query.csv_chunks(rows, rows=2)) == buf.getvalue()
    assert "".join(query.csv_lines(events)) == buf.getvalue()
