"""Demo data: one recorded export, so the reports and verify pages have something to show."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from qaportal.demo.steps import demo_step
from qaportal.extensions import db
from qaportal.models import ReportExport

DEMO_LABEL = "demo"


@demo_step(40)
def seed_reports(accounts: dict) -> str | None:
    """Export a credentials roster once, as the demo QA manager."""
    from qaportal.reports.service import create_export

    exists = db.session.scalar(
        sa.select(ReportExport.id).where(ReportExport.kind == "credentials").limit(1)
    )
    if exists:
        return None
    params = {"as_of": date.today(), "include_inactive": False, "confidential": True}
    export, _ = create_export("credentials", params, accounts["qa_manager"])
    return f"reports: credentials roster exported as {export.document_id}"
