"""The case packet: one second-opinion request, with real stored images, as a PDF."""

from __future__ import annotations

import hashlib
import re
import time

import pydicom
import pytest
import sqlalchemy as sa

from qaportal.dicom import generate_ct_series
from qaportal.extensions import db
from qaportal.models import Instance, OpinionRequest, ReportExport, Study, User
from qaportal.opinions import service, signing
from qaportal.reports.case_evidence import LIST_ALL_INSTANCES, digest_of
from qaportal.reports.service import create_export
from qaportal.studies import jobs
from qaportal.studies import service as study_service
from qaportal.studies.presenter import present
from tests.factories import DEFAULT_PASSWORD, make_certification, make_user
from tests.pdftools import info, page_png, pdf_text, xmp_text

# Distinctive identifiers planted in the DICOM headers and in free text: none of them may
# appear in a de-identified packet.
PLANTED = {
    "PatientName": "ZEBRAFINCH^QUILLON",
    "PatientID": "PIDZX98271",
    "AccessionNumber": "ACCQW55123",
    "PatientBirthDate": "19470312",
    "InstitutionName": "Wombatvale General Hospital",
    "ReferringPhysicianName": "OKAPIWOOD^MARGA",
}
FORBIDDEN = ["ZEBRAFINCH", "QUILLON", "PIDZX98271", "ACCQW55123", "1947-03-12", "19470312",
             "Wombatvale", "OKAPIWOOD", "MARGA"]
QUESTION = "Does the imaging show a lesion that meets the payer's threshold?"
CRITERIA = "Policy RAD-77: mass larger than 3 cm with documented growth over 6 months."
IMPRESSION = "Solid mass of 4.2 cm, enlarged since the prior study."
ADDENDUM = "Addendum: prior comparison confirms interval growth of 8 mm."


def _export(client, data):
    return client.post("/reports/case/export", data=data, headers={"Accept": "application/json"})


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def ingest(owner: User, folder, *, slices: int = 6, burned_in: bool = False) -> Study:
    """Import a generated CT series with planted identifiers, as an upload would."""
    files = generate_ct_series(folder, slices=slices,
                               patient=(PLANTED["PatientName"], PLANTED["PatientID"]))
    for path in files:
        ds = pydicom.dcmread(path)
        for keyword, value in PLANTED.items():
            setattr(ds, keyword, value)
        if burned_in:
            ds.BurnedInAnnotation = "YES"
        ds.save_as(path)
    batch = jobs.new_batch(owner, "cli")
    jobs.import_files([folder], owner.id, batch.id)
    study = db.session.scalars(sa.select(Study).order_by(Study.id.desc())).first()
    assert study.instance_count == slices
    study.jurisdiction = "CA"
    study_service.set_original_read(
        study, by=owner, reader=owner, finalized_at=None,
        report_text="Indeterminate 4 cm mass. Patient Quillon Zebrafinch, MRN PIDZX98271.")
    db.session.commit()
    return study


def make_case(tmp_path, *, slices: int = 6, burned_in: bool = False, deidentified=True):
    """A coverage review with a signed opinion and an addendum, through the services."""
    requester = make_user(licenses=["CA"], full_name="Dr Rhea Requester")
    consultant = make_user(subspecialties=["body"], licenses=["CA"],
                           full_name="Dr Cyrus Consultant")
    make_certification(consultant)
    db.session.commit()
    study = ingest(requester, tmp_path / "ct", slices=slices, burned_in=burned_in)
    req = service.create_request(
        study, requester, priority="urgent", question=QUESTION, pool="body",
        history="Weight loss. ZEBRAFINCH family history of cancer.",
        request_type="coverage_review", criteria=CRITERIA, deidentified=deidentified)
    service.claim(req, consultant)
    service.record_view(req, consultant, "full")
    service.post_message(req, consultant, "Is there a prior study?")
    signing.save_draft(req, consultant, {
        "findings": "Solid mass in the left lobe.", "impression": IMPRESSION,
        "agreement": "minor", "recommendations": "Surgical consult.",
        "coverage_answer": "supported", "coverage_text": "Size and growth meet RAD-77."})
    signing.sign(req, consultant, DEFAULT_PASSWORD)
    signing.add_addendum(req, consultant, ADDENDUM, DEFAULT_PASSWORD)
    db.session.commit()
    return requester, consultant, req


@pytest.fixture
def case(app, tmp_path):
    return make_case(tmp_path)


def test_requester_exports_deidentified_packet_from_the_web(client, auth, case):
    requester, consultant, req = case
    auth.login(requester)
    detail = client.get(f"/opinions/{req.id}").get_data(as_text=True)
    assert f'href="/reports/?kind=case&amp;request={req.id}"' in detail
    page = client.get(f"/reports/?kind=case&request={req.id}").get_data(as_text=True)
    assert f'value="{req.id}" selected' in page or f'selected value="{req.id}"' in page
    assert "ZEBRAFINCH" not in page  # the choice labels name no patient
    started = time.monotonic()
    resp = _export(client, {"request": str(req.id), "deidentified": "y"})
    seconds = time.monotonic() - started
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    data = client.get(body["download_url"]).data
    text = _squash(pdf_text(data))
    for needle in ("Second-opinion case packet", f"Request #{req.id}", QUESTION, CRITERIA,
                   IMPRESSION, ADDENDUM, "Dr Cyrus Consultant", consultant.licenses[0].number,
                   "American Board of Radiology", "Coverage answer: Supported",
                   "Page 1 of", "Audit trail excerpt", "opinion.signed", "opinion.requested",
                   "hash chain is intact", req.study.pseudonym):
        assert needle in text, needle
    for bad in FORBIDDEN:
        assert bad.lower() not in text.lower(), bad
    # the hashes of the stored files, and the study digest computed as the packet says
    hashes = db.session.scalars(sa.select(Instance.sha256)).all()
    assert all(h in text for h in hashes)
    assert digest_of(hashes) in text
    # the study date is shifted as present() shifts it
    study = req.study
    shifted = present(study, "deidentified").study_date
    assert shifted != study.study_date
    assert re.search(r"Study date (\S+) \(shifted\)", text).group(1) == shifted.isoformat()
    # the key images are embedded (4 evenly spaced slices)
    assert data.count(b"/Subtype /Image") >= 4 or data.count(b"/Image") >= 4
    record = db.session.scalar(sa.select(ReportExport))
    assert record.parameters == {"request": req.id, "deidentified": True,
                                 "confidential": False}
    assert record.created_by_id == requester.id
    assert "pdfaid" in xmp_text(data) and record.document_id in info(data)["/Keywords"]
    png = page_png(data, "case-packet-page1")
    assert png.stat().st_size > 5000
    print(f"case packet with images: {record.page_count} pages, {seconds:.1f} s via the web")


def test_identified_packet_names_the_patient(app, client, login_as, case):
    _, _, req = case
    login_as("qa_manager")
    resp = _export(client, {"request": str(req.id)})  # box unticked: identified
    assert resp.status_code == 200
    data = client.get(resp.get_json()["download_url"]).data
    text = pdf_text(data)
    assert "ZEBRAFINCH^QUILLON" in text and "PIDZX98271" in text and "ACCQW55123" in text
    assert "Wombatvale General Hospital" in text and "1947-03-12" in text
    assert "Identified" in text


def test_unrelated_radiologist_and_consultant_are_refused(client, auth, login_as, case):
    requester, consultant, req = case
    login_as("radiologist")
    resp = _export(client, {"request": str(req.id), "deidentified": "y"})
    assert resp.status_code == 403
    missing = _export(client, {"request": "999999", "deidentified": "y"})
    assert missing.status_code == 403  # the same answer: existence is not confirmed
    assert client.get(f"/reports/case/preview?request={req.id}").status_code == 403
    page = client.get("/reports/").get_data(as_text=True)
    assert f"#{req.id} ·" not in page  # not offered in the select
    other = client.get("/reports/?kind=audit").get_data(as_text=True)
    assert "Second-opinion case packet" in other and "Audit trail</a>" not in other
    auth.logout()
    auth.login(consultant)
    assert _export(client, {"request": str(req.id)}).status_code == 403
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ReportExport)) == 0


def test_radiologist_cannot_make_other_reports(client, login_as):
    login_as("radiologist")
    page = client.get("/reports/").get_data(as_text=True)
    assert "Second-opinion case packet" in page and "Audit trail" not in page
    resp = client.post("/reports/audit/export", data={"date_from": "2024-01-01",
                                                       "date_to": "2024-01-02"},
                       headers={"Accept": "application/json"})
    assert resp.status_code == 403


def test_preview_by_requester_is_html_and_audited(client, auth, case):
    requester, _, req = case
    auth.login(requester)
    resp = client.get(f"/reports/case/preview?request={req.id}&deidentified=y")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert IMPRESSION in html and "data:image/png;base64," in html
    assert "ZEBRAFINCH" not in html.upper()


def test_cli_export_defaults_to_how_the_request_was_shared(app, tmp_path, case):
    _, consultant, req = case
    out = tmp_path / "packet.pdf"
    result = app.test_cli_runner().invoke(args=["report", "case", "--request", str(req.id),
                                                "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = _squash(pdf_text(out.read_bytes()))
    assert IMPRESSION in text and consultant.licenses[0].number in text
    assert "ZEBRAFINCH" not in text.upper()  # shared de-identified -> de-identified packet
    out2 = tmp_path / "identified.pdf"
    result = app.test_cli_runner().invoke(args=["report", "case", "--request", str(req.id),
                                                "--identified", "-o", str(out2)])
    assert result.exit_code == 0, result.output
    assert "ZEBRAFINCH^QUILLON" in pdf_text(out2.read_bytes())
    bad = app.test_cli_runner().invoke(args=["report", "case", "--request", "99999",
                                             "-o", str(tmp_path / "x.pdf")])
    assert bad.exit_code == 2 and "no second-opinion request" in bad.output


def test_burned_in_pixels_are_not_embedded_when_deidentified(app, tmp_path):
    requester, _, req = make_case(tmp_path, slices=3, burned_in=True)
    _, pdf = create_export("case", {"request": req.id, "deidentified": True,
                                    "confidential": False}, requester)
    text = _squash(pdf_text(pdf.data))
    assert "Images omitted: possible burned-in patient identifiers" in text
    assert b"/Subtype /Image" not in pdf.data
    _, pdf = create_export("case", {"request": req.id, "deidentified": False,
                                    "confidential": False}, requester)
    assert "Images omitted" not in pdf_text(pdf.data)
    assert b"/Image" in pdf.data


def test_large_study_lists_series_digests_and_stays_short(app, tmp_path):
    slices = LIST_ALL_INSTANCES + 15
    requester, _, req = make_case(tmp_path, slices=slices)
    qa = make_user(roles=("qa_manager",))
    export, pdf = create_export("case", {"request": req.id, "deidentified": True,
                                         "confidential": False}, qa)
    text = _squash(pdf_text(pdf.data))
    hashes = db.session.scalars(sa.select(Instance.sha256)).all()
    assert len(hashes) == slices
    assert not any(h in text for h in hashes)  # no per-instance list ...
    assert digest_of(hashes) in text  # ... but the series and study digest
    assert "sorted, each followed by a line feed" in text
    assert export.page_count <= 8


def test_damaged_stored_file_is_reported(app, tmp_path, case):
    from qaportal.studies.storage import image_store

    requester, _, req = case
    inst = db.session.scalars(sa.select(Instance).order_by(Instance.id)).first()
    path = image_store().path(inst.storage_key)
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    _, pdf = create_export("case", {"request": req.id, "deidentified": True,
                                    "confidential": False}, requester)
    text = _squash(pdf_text(pdf.data))
    assert "1 of 6 stored files do not match their recorded SHA-256" in text


def test_audit_excerpt_is_capped_with_count(app, tmp_path, case):
    from qaportal import audit

    requester, _, req = case
    for _ in range(70):
        audit.record("opinion.viewed", req, actor=requester, view="full")
    db.session.commit()
    _, pdf = create_export("case", {"request": req.id, "deidentified": True,
                                    "confidential": False}, requester)
    text = _squash(pdf_text(pdf.data))
    total = db.session.scalar(sa.text(
        "SELECT count(*) FROM audit_events WHERE (object_type = 'opinion_requests' AND "
        "object_id = :r) OR (object_type = 'studies' AND object_id = :s)"),
        {"r": str(req.id), "s": str(req.study_id)})
    assert f"{total - 60} more events not shown" in text


def test_prefill_follows_how_the_request_was_shared(app, client, auth, tmp_path):
    requester, _, req = make_case(tmp_path, slices=2, deidentified=False)
    auth.login(requester)
    page = client.get(f"/reports/?kind=case&request={req.id}").get_data(as_text=True)
    box = re.search(r'<input[^>]*name="deidentified"[^>]*>', page).group(0)
    assert "checked" not in box
    assert db.session.get(OpinionRequest, req.id).deidentified is False
    digest = hashlib.sha256(b"").hexdigest()
    assert digest_of([]) == digest
