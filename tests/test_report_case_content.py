"""The case packet's content: blinding in the audit excerpt, original read, timeline,
turnaround against target, the export's audit record, running header and footer."""

from __future__ import annotations

import re
from datetime import timedelta

import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import AuditEvent, ReportExport
from qaportal.reports.service import create_export
from tests.factories import make_assignment, make_user
from tests.pdftools import assert_page_furniture, pdf_text
from tests.test_report_case_packet import make_case

BLIND_NAME, BLIND_EMAIL = "Zora Blindreviewer", "zora.blind@example.test"
COMMITTEE_NAME, COMMITTEE_EMAIL = "Casimir Committeeseat", "casimir.cttee@example.test"


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_packet_does_not_name_blind_reviewers_to_the_requester(app, client, auth, tmp_path):
    requester, consultant, req = make_case(tmp_path, slices=2)
    study = req.study
    reviewer = make_user(["reviewer"], full_name=BLIND_NAME, email=BLIND_EMAIL)
    member = make_user(["reviewer"], full_name=COMMITTEE_NAME, email=COMMITTEE_EMAIL)
    make_assignment(study.read, reviewer)  # a blind peer-review grant
    from qaportal.studies.access import grant_access
    grant_access(study, member, mode="deidentified", source=("committee_review", 1), by=None)
    db.session.commit()
    series = study.series[0]
    for who in (reviewer, member):  # both open the viewer, as a reviewer would
        auth.login(who)
        assert client.get(f"/studies/{study.id}/viewer").status_code == 200
        assert client.get(f"/studies/{study.id}/series/{series.id}/frames.json"
                          ).status_code == 200
        auth.logout()
    auth.login(requester)
    resp = client.post("/reports/case/export", data={"request": str(req.id)},
                       headers={"Accept": "application/json"})  # identified packet
    assert resp.status_code == 200, resp.get_data(as_text=True)
    data = client.get(resp.get_json()["download_url"]).data
    text = _squash(pdf_text(data))
    for bad in (BLIND_NAME, BLIND_EMAIL, COMMITTEE_NAME, COMMITTEE_EMAIL, "Blindreviewer",
                "Committeeseat"):
        assert bad.lower() not in text.lower(), bad
    # the participants' events stay, the others are counted without names
    assert requester.email in text and consultant.email in text
    assert "opinion.signed" in text and "study.series_viewed" not in text
    hidden = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.object_type == "studies", AuditEvent.object_id == str(study.id),
        sa.or_(AuditEvent.actor_id.in_((reviewer.id, member.id)),
               sa.and_(AuditEvent.actor_id.is_(None),  # the grants, which name the grantee
                       AuditEvent.action == "study.access_granted"))))
    assert hidden == 6  # two views each by the reviewer and the member, two grants
    assert (f"{hidden} further events by other users with access to the study "
            "(for example blinded peer review)") in text
    # the HTML preview follows the same rule
    html = client.get(f"/reports/case/preview?request={req.id}").get_data(as_text=True)
    assert BLIND_EMAIL not in html and COMMITTEE_EMAIL not in html


def test_packet_prints_read_timeline_turnaround_and_page_furniture(app, tmp_path):
    requester, consultant, req = make_case(tmp_path, slices=2)
    export, pdf = create_export("case", {"request": req.id, "deidentified": True,
                                         "confidential": False}, requester)
    text = _squash(pdf_text(pdf.data))
    # the original read (scrubbed of the planted identifiers)
    assert "Original read" in text and "Indeterminate 4 cm mass." in text
    assert "Patient [removed], MRN [removed]" in text
    # timeline rows and the turnaround against the urgent target, met
    assert "Timeline and turnaround" in text
    for row in ("Requested Dr Rhea Requester", "Claimed from the pool Dr Cyrus Consultant",
                "First viewed by the consultant", "First message Dr Cyrus Consultant",
                "Opinion signed", "Addendum signed"):
        assert row in text, row
    target = (req.due_at - req.requested_at).total_seconds() / 3600
    assert re.search(rf"\b\d+ ?min {int(target)} ?h ✓ met turnaround, request to signature "
                     "target for urgent", text, re.I)
    assert "✓ met" in text and "✗ missed" not in text
    # every page: running title, document id, generation time, page X of Y; the cover
    pages = assert_page_furniture(pdf.data, export,
                                  f"Second-opinion case packet · Request #{req.id}")
    assert "COVERAGEREVIEW" in pages[0].replace(" ", "")  # the cover's kind, letter-spaced
    # the export's audit record carries its parameters
    ev = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "report.exported"))
    assert ev.actor_id == requester.id and ev.object_id == str(export.id)
    assert ev.details["kind"] == "case" and ev.details["document_id"] == export.document_id
    assert ev.details["sha256"] == export.sha256 and ev.details["pages"] == export.page_count
    assert ev.details["parameters"] == {"request": req.id, "deidentified": True,
                                        "confidential": False}


def test_missed_target_is_marked(app, tmp_path):
    requester, _, req = make_case(tmp_path, slices=1)
    late = timedelta(days=3)  # the same target, but requested three days before signing
    req.requested_at -= late
    req.due_at -= late
    db.session.commit()
    _, pdf = create_export("case", {"request": req.id, "deidentified": True,
                                    "confidential": False}, requester)
    text = _squash(pdf_text(pdf.data))
    assert "✗ missed" in text and "✓ met" not in text
    assert re.search(r"\b3 ?d \d+ ?h ✗ missed turnaround, request to signature", text)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ReportExport)) == 1
