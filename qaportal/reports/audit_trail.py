"""The "Audit trail" report: the audit log for a period, with the hash chain checked."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from qaportal import audit
from qaportal.auditlog.query import filtered
from qaportal.extensions import db
from qaportal.models import AuditEvent, User
from qaportal.pdf.svg import bar_chart
from qaportal.reports.forms import AuditTrailForm
from qaportal.reports.registry import ReportDefinition, register

# Beyond this many entries the report lists the first ones and says so; the summaries
# cover them all (the audit log's CSV export has every row).
MAX_ROWS = 1000
TOP = 12


def _filtered(params: dict[str, Any]) -> sa.Select:
    # The audit log page's filters, so the report and the page select the same entries
    # (the actor text resolved to the labels it matches, read from the label index).
    return filtered(params)


def _counts(stmt: sa.Select, column) -> list[tuple[str, int]]:
    sub = stmt.subquery()
    col = sub.c[column.key]
    n = sa.func.count().label("n")
    rows = db.session.execute(
        sa.select(col, n).group_by(col).order_by(n.desc(), col).limit(TOP)
    ).all()
    return [(value or "—", count) for value, count in rows]


def build_context(params: dict[str, Any], user: User | None) -> dict[str, Any]:
    """Gather the period's entries, their summaries and the chain verification."""
    stmt = _filtered(params)
    total = db.session.scalar(sa.select(sa.func.count()).select_from(stmt.subquery())) or 0
    events = db.session.scalars(stmt.order_by(AuditEvent.seq).limit(MAX_ROWS)).all()
    by_action = _counts(stmt, AuditEvent.action)
    by_actor = _counts(stmt, AuditEvent.actor_label)
    filters = [(label, params[key].strip()) for key, label in (
        ("actor", "Actor contains"), ("action", "Action starts with"),
        ("object_type", "Object type"), ("object_id", "Object id"),
    ) if params.get(key) and params[key].strip()]
    return {
        "title": "Audit trail",
        "subtitle": f"{params['date_from']:%d %b %Y} – {params['date_to']:%d %b %Y}",
        "filters": filters,
        "chain": audit.verify(incremental=True),
        "total": total,
        "events": events,
        "truncated": total > len(events),
        "max_rows": MAX_ROWS,
        "by_action": by_action,
        "by_actor": by_actor,
        "action_chart": bar_chart(by_action) if by_action else None,
    }


register("audit", ReportDefinition(
    title="Audit trail",
    form_class=AuditTrailForm,
    build_context=build_context,
    template="pdf/audit_trail.html",
    description="Who did what and when, for a period or one object, with the tamper-evidence "
                "check of the whole log.",
    signatories=("Privacy / security officer", "QA manager"),
))
