"""OPPE and FPPE packets: one radiologist's practice evaluation over a period.

Every figure comes from qaportal.qa.stats (rates, Wilson intervals, funnel limits) and
qaportal.opinions.sla (turnaround). The packet names the radiologist only: other readers
are anonymous dots on the funnel plot, and no reviewer or committee member is ever named
(nor is any free text of reviews or decisions printed, which could name them).
Long periods are summarised: tables are aggregates, and at most MAX_LISTED confirmed
discrepancies are listed.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from functools import partial
from typing import Any

import sqlalchemy as sa
from flask import current_app
from markupsafe import Markup
from sqlalchemy.orm import selectinload

from qaportal.extensions import db
from qaportal.models import User, utcnow
from qaportal.models.credentials import SUBSPECIALTY_LABELS, validity_status
from qaportal.models.discrepancy import STATUS_LABELS
from qaportal.models.review import CATEGORY_LABELS, RADPEER_SCORES
from qaportal.qa import stats
from qaportal.reports import qa_data
from qaportal.reports.qa_forms import FppeForm, OppeForm
from qaportal.reports.registry import ReportDefinition, register

MAX_LISTED = 30
PEER_LABEL = "peer"  # how every other reader appears on the funnel plot


def _credentials(user: User, day: date) -> dict[str, Any]:
    warn = int(current_app.config["CREDENTIAL_EXPIRY_WARNING_DAYS"])
    licenses = [
        {"label": lic.jurisdiction, "detail": lic.number, "starts": lic.valid_from,
         "ends": lic.valid_to,
         "status": "pending" if lic.valid_from > day else validity_status(lic.valid_to, day,
                                                                           warn)}
        for lic in sorted(user.licenses, key=lambda x: (x.jurisdiction, x.valid_to))
    ]
    certs = [
        {"label": c.specialty, "detail": c.board, "starts": c.certified_on, "ends": c.expires_on,
         "status": validity_status(c.expires_on, day, warn)}
        for c in sorted(user.certifications, key=lambda x: (x.board, x.specialty))
    ]
    privileges = [
        {"label": p.description, "detail": p.facility, "starts": p.granted_on,
         "ends": p.valid_to, "notes": p.notes,
         "status": "pending" if p.granted_on > day else validity_status(p.valid_to, day, warn)}
        for p in sorted(user.privileges, key=lambda x: (x.facility, x.description, x.valid_to))
    ]
    return {
        "licenses": licenses, "certifications": certs, "privileges": privileges,
        "as_of": day, "warn_days": warn,
        "subspecialties": sorted(SUBSPECIALTY_LABELS.get(s, s) for s in user.subspecialty_names),
        "attention": sum(1 for i in licenses + certs + privileges if i["status"] != "valid"),
    }


def _modality_rows(breakdown: dict[str, stats.ReaderStats],
                   volume: Counter[str]) -> list[dict]:
    rows = []
    for modality in sorted(set(volume) | set(breakdown)):
        s = breakdown.get(modality) or stats.empty_stats()
        reads = volume.get(modality, 0)
        rows.append({"modality": modality, "reads": reads, "stats": s,
                     "reviewed": s.n + s.unable + s.adhoc,
                     "coverage": (s.n + s.unable + s.adhoc) / reads if reads else None})
    return rows


def build_packet(params: dict[str, Any], user: User | None, *, fppe: bool) -> dict[str, Any]:
    """Gather one radiologist's OPPE (or FPPE) packet for the period."""
    session = db.session
    period = qa_data.period_of(params)
    reader = session.scalar(
        sa.select(User).where(User.email == params["radiologist"])
        .options(selectinload(User.licenses), selectinload(User.certifications),
                 selectinload(User.privileges),
                 selectinload(User.subspecialties), selectinload(User.roles)))
    if reader is None:  # the form validated it; a deleted account is not possible
        raise LookupError("radiologist not found")
    now = utcnow()

    # The radiologist's own figures and rows; the department's only as aggregates.
    mine = stats.breakdown(session, period, reader_id=reader.id)
    own = mine.total
    readers = stats.reader_stats(session, period)
    dept = stats.make_rate(sum(r.significant for r in readers), sum(r.n for r in readers))
    p = dept.p or 0.0
    points = [(reader.full_name if r.reader_id == reader.id else PEER_LABEL, r.n, r.significant)
              for r in readers]
    funnel = stats.funnel_svg(points, p, labels=False, highlight=reader.full_name, height=290,
                              title="Significant-discrepancy rate: this radiologist among "
                                    "the department's readers") if points else None
    months = len(mine.months)
    trend = stats.trend_svg([(t.month, t.rate.n, t.rate.k) for t in mine.months], p,
                            height=210,
                            title="Monthly significant-discrepancy rate (this radiologist)")

    volume = qa_data.read_volume(session, period, reader.id).get(reader.id, Counter())
    confirmed = qa_data.confirmed_items(session, period, reader.id)
    categories = Counter(i.category or "unspecified" for i in confirmed)
    outcomes = Counter(i.outcome or "not adjudicated (imported)" for i in confirmed)

    signed = qa_data.signed_by(session, reader.id, period)
    turnaround = qa_data.turnaround_rows(signed, now)

    name = reader.full_name
    context: dict[str, Any] = {
        "title": "FPPE packet" if fppe else "OPPE packet",
        "subtitle": f"{name} · {period.start:%d %b %Y} – {period.end:%d %b %Y}",
        "fppe": fppe,
        "reader": reader,
        "period": period,
        "period_days": (period.end - period.start).days + 1,
        "months": months,
        "credentials": _credentials(reader, now.date()),
        "total_reads": sum(volume.values()),
        "modality_rows": _modality_rows(mine.modalities, volume),
        "own": own,
        "dept": dept,
        "dept_readers": len(readers),
        "position": stats.funnel_position(p, own.n, own.significant),
        "funnel": Markup(funnel) if funnel else None,  # noqa: S704 (our own SVG)
        "trend": Markup(trend) if own.n else None,  # noqa: S704
        "scores": RADPEER_SCORES,
        "confirmed": confirmed[:MAX_LISTED],
        "confirmed_total": len(confirmed),
        "confirmed_more": max(0, len(confirmed) - MAX_LISTED),
        "confirmed_adhoc": sum(not i.rated for i in confirmed),
        "categories": sorted(categories.items(), key=lambda kv: (-kv[1], kv[0])),
        "outcomes": sorted(outcomes.items(), key=lambda kv: (-kv[1], kv[0])),
        "category_labels": CATEGORY_LABELS,
        "case_status_labels": STATUS_LABELS,
        "opinions_signed": len(signed),
        "turnaround": turnaround,
        "turnaround_total": qa_data.turnaround_total(turnaround, signed),
        **qa_data.FORMATTERS,
    }
    if fppe:
        context["fppe_fields"] = {
            "trigger": (params.get("fppe_trigger") or "").strip(),
            "criteria": (params.get("fppe_criteria") or "").strip(),
            "conclusion": (params.get("fppe_conclusion") or "").strip(),
        }
    return context


SIGNATORIES = ("Department chair", "Medical staff office")

register("oppe", ReportDefinition(
    title="OPPE packet", form_class=OppeForm,
    build_context=partial(build_packet, fppe=False), template="pdf/oppe.html",
    description="Ongoing professional practice evaluation of one radiologist: credentials, "
                "case volume, peer-review rates with intervals against the department, "
                "confirmed discrepancies, second-opinion turnaround.",
    confidential_default=True, signatories=SIGNATORIES,
))

register("fppe", ReportDefinition(
    title="FPPE packet", form_class=FppeForm,
    build_context=partial(build_packet, fppe=True), template="pdf/oppe.html",
    description="Focused professional practice evaluation: the OPPE packet with the trigger, "
                "criteria, monitoring period and conclusion, for the department chair.",
    confidential_default=True, signatories=SIGNATORIES,
))
