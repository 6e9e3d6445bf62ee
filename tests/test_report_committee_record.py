"""The committee record PDF (report kind "committee", qaportal/reports/committee_record.py):
a discrepancy case with a real CT study, the reviewer's viewer mark (a length on a stored
image), two committee rounds (the reader disputed), decisions and the reader's response,
exported by a QA manager from the QA case page and read back with pdftotext. Access: QA
managers only (the reader, the reviewer and committee members are refused like on every
/qa/ page), anonymous users go to sign in, a missing case is 404, a form without its CSRF
token is refused; the export is recorded and audited."""

from __future__ import annotations

import io
import re

import pytest
import sqlalchemy as sa
from pypdf import PdfReader

from qaportal.extensions import db
from qaportal.models import AuditEvent, Instance, ReportExport, Series, utcnow
from qaportal.qa import cases as cs
from qaportal.reviews import service as review_service
from tests.factories import make_assignment, make_user
from tests.marks_world import PATIENT, ingest_ct, make_mark
from tests.pdftools import pdf_text


@pytest.fixture
def world(app, tmp_path):
    """A decided, disputed, re-decided and acknowledged case with the reviewer's mark."""
    reader = make_user(["radiologist"], full_name="Dr Rita Reader")
    db.session.commit()
    study = ingest_ct(reader, tmp_path / "ct")
    study.read.finalized_at = utcnow()
    reviewer = make_user(["reviewer"], full_name="Dr Vera Reviewer")
    alice = make_user(["reviewer"], full_name="Dr Alice Member")
    bruno = make_user(["radiologist"], full_name="Dr Bruno Member")
    qa = make_user(["qa_manager"], full_name="Dr Quinn Manager")
    assignment = make_assignment(study.read, reviewer, deidentified=True)
    first = db.session.scalars(sa.select(Instance).join(Series).where(
        Series.study_id == study.id).order_by(Instance.instance_number)).first()
    make_mark(reviewer, first, assignment=assignment, label="Nodule RUL")
    assignment.revealed_at = utcnow()
    review = review_service.submit(assignment, reviewer, score="3b", category="perceptual",
                                   comment="Missed 12 mm nodule.")
    case = review.case
    cs.assign_committee(case, [alice, bruno], qa)
    cs.cast_vote(case, alice, "3b", "Clearly visible on image 1.")
    cs.cast_vote(case, bruno, "3a", "Subtle but seen in hindsight.")
    cs.record_decision(case, qa, final_score="3b", outcome="upheld",
                       rationale="Nodule visible; follow-up was warranted.")
    cs.dispute(case, reader, f"The nodule was obscured by motion. {PATIENT[0]}")
    cs.cast_vote(case, alice, "3b", "Still visible.")
    cs.cast_vote(case, bruno, "2b", "Motion made it hard.")
    cs.record_decision(case, qa, final_score="3a", outcome="downgraded",
                       rationale="Partly obscured; downgraded after the dispute.")
    cs.acknowledge(case, reader, "Accepted; will use the lung window.")
    db.session.commit()
    return {"case": case, "qa": qa, "reader": reader, "reviewer": reviewer,
            "members": (alice, bruno), "study": study}


def _exports() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(ReportExport)) or 0


def test_qa_manager_exports_the_committee_record(client, auth, world):
    case = world["case"]
    auth.login(world["qa"])
    page = client.get(f"/qa/cases/{case.id}").get_data(as_text=True)
    assert 'id="committee-record"' in page and f"/qa/cases/{case.id}/record" in page
    # The QA case page shows the reviewer's marks too, named, with the key image.
    assert "Length 12 mm" in page and "Nodule RUL" in page and "Dr Vera Reviewer" in page
    mark_id = re.search(r'id="mark-(\d+)"', page).group(1)
    assert f"/marks/{mark_id}/key-images/0.png" in page
    assert client.get(f"/marks/{mark_id}/key-images/0.png").status_code == 200
    r = client.post(f"/qa/cases/{case.id}/record")
    assert r.status_code == 303, r.get_data(as_text=True)[:500]
    export = db.session.scalars(sa.select(ReportExport)).one()
    assert export.kind == "committee" and export.parameters == {"case": case.id,
                                                                "confidential": True}
    assert r.headers["Location"].endswith(f"/reports/exports/{export.document_id}.pdf")
    got = client.get(r.headers["Location"])
    assert got.status_code == 200 and got.mimetype == "application/pdf"
    text = pdf_text(got.data)
    flat = re.sub(r"\s+", " ", text)
    # Identity, review, committee.
    assert f"Discrepancy case #{case.id}" in flat
    assert "Dr Rita Reader" in flat and "Dr Vera Reviewer" in flat
    assert "perceptual" in flat.lower() and "Missed 12 mm nodule." in flat
    # Each round's votes: member, score, comment.
    for fragment in ("Round 1", "Round 2", "Dr Alice Member", "Dr Bruno Member",
                     "Clearly visible on image 1.", "Subtle but seen in hindsight.",
                     "Motion made it hard."):
        assert fragment in flat, fragment
    votes = re.findall(r"Dr (Alice|Bruno) Member\s+(3b|3a|2b)\b", text)
    assert sorted(votes) == sorted([("Alice", "3b"), ("Bruno", "3a"), ("Alice", "3b"),
                                    ("Bruno", "2b")]), votes
    # The decision standing, and the reader's dispute and response.
    assert "downgraded" in flat and "Partly obscured; downgraded after the dispute." in flat
    assert f"{case.decided_at:%Y-%m-%d %H:%M} UTC" in flat
    assert "Accepted; will use the lung window." in flat
    assert "READER'S DISPUTE" in flat.upper() and "Reader acknowledged" in flat
    assert "The nodule was obscured by motion. [removed]" in flat  # history note, scrubbed
    # The reviewer's viewer mark, its key image embedded.
    assert "Viewer measurements" in flat and "Length 12 mm" in flat and "Nodule RUL" in flat
    assert "Key images marked in the viewer" in flat
    drawn = [im.image.size for p in PdfReader(io.BytesIO(got.data)).pages for im in p.images]
    # The key image with the length drawn (WeasyPrint shares one resource dictionary
    # between the pages, so each page lists it).
    assert set(drawn) == {(512, 512)}, drawn
    # No patient identifiers; the confidentiality statement.
    for value in (*PATIENT, "MARKSPATIENT", "QUOKKA"):
        assert value not in text, value
    assert "Confidential peer-review record" in flat
    assert flat.count("Confidential peer review document") >= 2  # every page's footer
    assert export.document_id in flat
    # Audited: the export and, on the case itself, that its record was exported.
    actions = {(e.action, e.object_type) for e in db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.actor_id == world["qa"].id))}
    assert ("report.exported", "report_exports") in actions
    assert ("discrepancy.record_exported", "discrepancy_cases") in actions
    on_case = db.session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "discrepancy.record_exported")).one()
    assert on_case.object_id == str(case.id)
    assert on_case.details["document_id"] == export.document_id


def test_json_answer_and_a_case_without_committee(client, auth, app, tmp_path):
    reader = make_user(["radiologist"], full_name="Dr Open Reader")
    db.session.commit()
    study = ingest_ct(reader, tmp_path / "ct2", slices=2)
    study.read.finalized_at = utcnow()
    reviewer = make_user(["reviewer"])
    qa = make_user(["qa_manager"])
    assignment = make_assignment(study.read, reviewer)
    assignment.revealed_at = utcnow()
    case = review_service.submit(assignment, reviewer, score="2b", category="interpretive",
                                 comment="Misread.").case
    db.session.commit()
    auth.login(qa)
    r = client.post(f"/qa/cases/{case.id}/record", headers={"Accept": "application/json"})
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    body = r.get_json()
    data = client.get(body["download_url"]).data
    flat = re.sub(r"\s+", " ", pdf_text(data))
    assert "No committee has been assigned." in flat and "No decision has been recorded." in flat
    assert "Viewer measurements" not in flat  # no marks: no section


def test_only_qa_managers_export(client, auth, world):
    case = world["case"]
    url = f"/qa/cases/{case.id}/record"
    anonymous = client.post(url)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    admin = make_user(["admin"])
    bystander = make_user(["reviewer"])
    db.session.commit()
    # The case's own reader, reviewer and committee members are refused like anyone
    # without the QA role: the record names everyone the committee scored blind.
    for user in (world["reader"], world["reviewer"], *world["members"], bystander, admin):
        auth.login(user)
        assert client.post(url).status_code == 403, user.email
        preview = client.get("/reports/committee/preview", query_string={"case": case.id})
        assert preview.status_code == 403, user.email
        auth.logout()
    assert _exports() == 0
    auth.login(world["qa"])
    assert client.post(f"/qa/cases/{case.id + 999}/record").status_code == 404
    assert _exports() == 0
    # The reports page offers the kind to QA managers, preselecting ?case=.
    page = client.get("/reports/", query_string={"kind": "committee", "case": case.id})
    assert page.status_code == 200 and "Committee record" in page.get_data(as_text=True)
    preview = client.get("/reports/committee/preview", query_string={"case": case.id})
    assert preview.status_code == 200 and "Dr Alice Member" in preview.get_data(as_text=True)


def test_the_export_needs_the_csrf_token(tmp_path, db_url):
    from tests.conftest import make_test_app
    from tests.factories import DEFAULT_PASSWORD

    app = make_test_app(tmp_path, db_url, WTF_CSRF_ENABLED=True)
    with app.app_context():
        reader = make_user(["radiologist"])
        reviewer = make_user(["reviewer"])
        qa = make_user(["qa_manager"])
        from tests.factories import make_review, make_study

        case = cs.open_case(make_review(make_study(reader).read, reviewer, "3b"), by=reviewer)
        db.session.commit()
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        assert client.post("/login", data={"email": qa.email, "password": DEFAULT_PASSWORD,
                                           "csrf_token": token}).status_code == 302
        url = f"/qa/cases/{case.id}/record"
        assert client.post(url).status_code == 400
        assert client.post(url, data={"csrf_token": "forged"}).status_code == 400
        assert _exports() == 0
        page = client.get(f"/qa/cases/{case.id}").get_data(as_text=True)
        form = page[page.index('id="committee-record-form"'):]
        token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        assert client.post(url, data={"csrf_token": token}).status_code == 303
        assert _exports() == 1
        db.session.remove()
        db.engine.dispose()


def test_command_line_export(app, tmp_path):
    from tests.factories import make_review, make_study

    reviewer = make_user(["reviewer"], full_name="Dr Cli Reviewer")
    case = cs.open_case(make_review(make_study(make_user(["radiologist"])).read, reviewer,
                                    "3b"), by=reviewer)
    db.session.commit()
    out = tmp_path / "record.pdf"
    runner = app.test_cli_runner()
    missing = runner.invoke(args=["report", "committee", "--case", str(case.id + 9),
                                  "-o", str(out)])
    assert missing.exit_code == 2 and "no discrepancy case" in missing.output
    result = runner.invoke(args=["report", "committee", "--case", str(case.id), "-o", str(out)])
    assert result.exit_code == 0, result.output
    flat = re.sub(r"\s+", " ", pdf_text(out.read_bytes()))
    assert f"Discrepancy case #{case.id}" in flat and "Dr Cli Reviewer" in flat
    export = db.session.scalars(sa.select(ReportExport)).one()
    assert export.kind == "committee" and export.created_by_id is None
    assert export.parameters == {"case": case.id, "confidential": True}
