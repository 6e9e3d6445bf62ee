"""FHIR R4 DiagnosticReport over HTTP: token auth and scopes, validation, matching."""

from __future__ import annotations

import base64
import copy

import pytest
import sqlalchemy as sa

from qaportal.auth import tokens
from qaportal.models import AuditEvent, IncomingRead, Study
from qaportal.studies import jobs
from tests.factories import make_study, make_user
from tests.studyfiles import modified_copy

FHIR = "application/fhir+json"
STUDY_UID = "1.2.826.0.1.3680043.8.498.77"


@pytest.fixture
def site(db):
    owner = make_user(["radiologist"], email="ris@example.test")
    reader = make_user(["radiologist"], reader_id="NPI222")
    writer = tokens.create(owner, label="ris", scopes=("read", "write"), expires_days=None,
                           by=owner)
    viewer = tokens.create(owner, label="ro", scopes=("read",), expires_days=None, by=owner)
    db.session.commit()
    return {"owner": owner, "reader": reader, "write": writer.secret, "read": viewer.secret}


def report(accession: str = "ACC1", **changes) -> dict:
    body = {
        "resourceType": "DiagnosticReport",
        "identifier": [{"system": "urn:oid:1.2.3.4.5", "value": "RPT-1"},
                       {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                             "code": "ACSN"}]},
                        "value": accession}],
        "status": "final",
        "code": {"text": "CT chest"},
        "issued": "2026-12-01T10:30:00+01:00",
        "resultsInterpreter": [{"reference": "#reader"}],
        "contained": [{"resourceType": "Practitioner", "id": "reader",
                       "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi",
                                       "value": "NPI222"}],
                       "name": [{"family": "Jones", "given": ["Ada"]}]}],
        "conclusion": "No acute findings.",
    }
    body.update(changes)
    return body


def post(client, body, secret: str | None, content_type: str = FHIR):
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return client.post("/fhir/DiagnosticReport", json=body, headers=headers,
                       content_type=content_type)


def test_a_final_report_becomes_the_studys_read(client, db, site):
    study = make_study(site["owner"], report=None)
    study.accession_number = "ACC1"
    db.session.commit()
    r = post(client, report(), site["write"])
    assert r.status_code == 201 and r.mimetype == FHIR
    row = db.session.scalar(sa.select(IncomingRead))
    assert r.headers["Location"].endswith(f"/fhir/DiagnosticReport/{row.id}")
    assert r.get_json()["id"] == str(row.id)
    db.session.expire_all()
    read = study.read
    assert (read.report_text, read.reader_id) == ("No acute findings.", site["reader"].id)
    assert read.finalized_at.isoformat() == "2026-12-01T09:30:00+00:00"
    assert (row.source, row.status, row.reader_name) == ("fhir", "matched", "Ada Jones")
    again = post(client, report(), site["write"])  # same identifier: the same read
    assert again.status_code == 200 and again.get_json()["id"] == str(row.id)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(IncomingRead)) == 1
    used = db.session.scalars(sa.select(AuditEvent.action)).all()
    assert "api_token.used" in used and "feeds.read_matched" in used


def test_imaging_study_uid_and_presented_form_and_waiting_for_images(client, db, site,
                                                                     tmp_path):
    body = report("", identifier=[], conclusion=None,
                  imagingStudy=[{"identifier": {"system": "urn:dicom:uid",
                                                "value": f"urn:oid:{STUDY_UID}"}}],
                  presentedForm=[{"contentType": "text/plain",
                                  "data": base64.b64encode(b"Small nodule.").decode()}])
    r = post(client, body, site["write"])
    assert r.status_code == 201 and r.headers["X-QAPortal-Read-Status"] == "waiting_images"
    row = db.session.scalar(sa.select(IncomingRead))
    assert (row.study_uid, row.report_text, row.message_id) == (STUDY_UID, "Small nodule.",
                                                                None)
    path = modified_copy("CT_small.dcm", tmp_path / "ct.dcm", StudyInstanceUID=STUDY_UID)
    owner = site["owner"]
    jobs.import_files([(path.name, path)], owner.id, jobs.new_batch(owner, "cli").id)
    db.session.expire_all()
    study = db.session.scalar(sa.select(Study).where(Study.study_uid == STUDY_UID))
    assert study.read.report_text == "Small nodule." and row.status == "matched"


def test_validation_errors_answer_operation_outcome(client, db, site):
    r = post(client, {"resourceType": "Patient"}, site["write"])
    assert r.status_code == 400 and r.mimetype == FHIR
    assert r.get_json()["resourceType"] == "OperationOutcome"
    bad = report(status="final")
    del bad["code"]
    r = post(client, bad, site["write"])
    assert r.status_code == 400 and "code" in r.get_json()["issue"][0]["diagnostics"]
    incomplete = copy.deepcopy(report())
    del incomplete["resultsInterpreter"]
    incomplete["conclusion"] = None
    r = post(client, incomplete, site["write"])
    assert r.status_code == 422
    issues = " ".join(i["diagnostics"] for i in r.get_json()["issue"])
    assert "resultsInterpreter" in issues and "conclusion" in issues
    r = post(client, report(), site["write"], content_type="text/plain")
    assert r.status_code == 415 and r.get_json()["resourceType"] == "OperationOutcome"
    r = client.post("/fhir/DiagnosticReport", data=b"{not json", content_type=FHIR,
                    headers={"Authorization": f"Bearer {site['write']}"})
    assert r.status_code == 400
    assert db.session.scalar(sa.select(sa.func.count()).select_from(IncomingRead)) == 0


def test_a_final_read_that_differs_is_refused_with_422(client, db, site):
    study = make_study(site["owner"], reader=site["reader"], report="Earlier final text.")
    study.accession_number = "ACC9"
    db.session.commit()
    r = post(client, report("ACC9"), site["write"])
    assert r.status_code == 422 and "final" in r.get_json()["issue"][0]["diagnostics"]
    corrected = post(client, report("ACC9", status="corrected",
                                    identifier=[{"value": "RPT-2"},
                                                {"type": {"coding": [{"code": "ACSN"}]},
                                                 "value": "ACC9"}]), site["write"])
    assert corrected.status_code == 201
    db.session.expire_all()
    assert study.read.report_text == "No acute findings." and len(study.read.versions) == 1


def test_the_location_of_a_created_report_reads_it_back_for_its_sender_only(client, db, site):
    from fhir.resources.R4B.diagnosticreport import DiagnosticReport

    created = post(client, report("ACC-LOC"), site["write"])
    assert created.status_code == 201
    location = created.headers["Location"]
    assert location.startswith("/fhir/DiagnosticReport/")
    got = client.get(location, headers={"Authorization": f"Bearer {site['read']}"})
    assert got.status_code == 200 and got.mimetype == FHIR
    back = DiagnosticReport.model_validate(got.get_json())  # a valid resource
    assert back.id == created.get_json()["id"] and back.status == "final"
    assert back.conclusion == "No acute findings."
    assert {i.value for i in back.identifier} == {"RPT-1", "ACC-LOC"}
    assert got.headers["X-QAPortal-Read-Status"] == "waiting_images"
    viewed = db.session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "feeds.read_viewed")).all()
    assert len(viewed) == 1 and viewed[0].actor_id == site["owner"].id
    stranger = make_user(["radiologist"])
    theirs = tokens.create(stranger, label="x", scopes=("read",), expires_days=None,
                           by=stranger)
    db.session.commit()
    other = client.get(location, headers={"Authorization": f"Bearer {theirs.secret}"})
    assert other.status_code == 404 and other.get_json()["resourceType"] == "OperationOutcome"
    assert client.get(location).status_code == 401


def test_no_token_is_401_and_a_read_scope_is_403(client, db, site):
    assert post(client, report(), None).status_code == 401
    r = post(client, report(), site["read"])
    assert r.status_code == 403 and r.get_json()["resourceType"] == "OperationOutcome"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(IncomingRead)) == 0


def test_a_session_post_needs_the_csrf_token(tmp_path, db_url):
    from tests.conftest import make_test_app

    app = make_test_app(tmp_path, db_url, WTF_CSRF_ENABLED=True)
    with app.app_context():
        make_user(["radiologist"], email="s@example.test")
        from qaportal.extensions import db as _db

        _db.session.commit()
        client = app.test_client()
        login_page = client.get("/login")
        assert login_page.status_code == 200
        token = _csrf(login_page.data)
        client.post("/login", data={"email": "s@example.test", "password": _password(),
                                    "csrf_token": token})
        r = post(client, report(), None)
        assert r.status_code == 400 and r.mimetype == FHIR
        assert _db.session.scalar(sa.select(sa.func.count()).select_from(IncomingRead)) == 0
        _db.session.remove()
        _db.engine.dispose()


def _csrf(html: bytes) -> str:
    import re

    return re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', html).group(1).decode()


def _password() -> str:
    from tests.factories import DEFAULT_PASSWORD

    return DEFAULT_PASSWORD
