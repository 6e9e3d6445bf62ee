"""Sentinel walk: no blind or de-identified viewer ever reads an identity they must not see.

A real DICOM file whose every identifying element holds a unique sentinel is written with
pydicom and ingested through the real upload; every typed field (clinical question and
history, report, impression, review and vote comments, teaching case and conference text,
second-opinion request fields and messages) repeats the sentinels in the ways people type
them. Then every GET route of `app.url_map` is requested as each blind user (de-identified
reviewer, blind reviewer with a full grant, committee member, teaching attendee) and as the
consultant of a de-identified second opinion, and no sentinel may appear in any answer
(HTML, JSON, text, zip names and contents), notification or e-mail they receive.
"""

from __future__ import annotations

import email
from pathlib import Path

import pytest
import sqlalchemy as sa

from qaportal.models import Study, UploadBatch
from qaportal.opinions import service as opinions
from qaportal.qa import cases as case_service
from qaportal.qa import learning
from qaportal.reports.registry import REPORTS
from qaportal.reviews import service
from tests.factories import make_assignment, make_user
from tests.marks_world import make_mark
from tests.route_walk import dicomweb_values, get_urls
from tests.studyfiles import modified_copy
from tests.test_blinding_routes import DIRECTORY, _texts

READER = ("Aurelius Radleyvox", "arv@sentinel.test")
UPLOADER = ("Ulrika Uplandquist", "uu@sentinel.test")
DEID_REVIEWER = ("Dorothea Vantablick", "dv@sentinel.test")
FULL_REVIEWER = ("Fenwick Fullgrantson", "ff@sentinel.test")
MEMBER = ("Mortimer Membrook", "mm@sentinel.test")
ATTENDEE = ("Tabitha Teachwell", "tt@sentinel.test")
CONSULTANT = ("Cassius Consultorr", "cc@sentinel.test")

# What the DICOM header holds. Elements the portal keeps (name, IDs, birth date, institution,
# referring physician, descriptions) reach pages; the others only the de-identified zip.
DICOM = {
    "PatientName": "QUIXPATFAM^QUIXPATGIVEN",
    "PatientID": "QXMRN7319046",
    "AccessionNumber": "QXACC5519372",
    "PatientBirthDate": "19610305",
    "OtherPatientIDs": "QXOTHERID6621",
    "PatientAddress": "12 Quixaddress Lane",
    "PatientTelephoneNumbers": "QUIXPHONE",
    "PatientMotherBirthName": "QUIXMOTHER^ANNA",
    "InstitutionName": "Quixinst Memorial Hospital",
    "InstitutionAddress": "1 Quixstreet Road",
    "InstitutionalDepartmentName": "Quixdept Radiology",
    "ReferringPhysicianName": "QUIXREFFAM^QUIXREFGIVEN",
    "PerformingPhysicianName": "QUIXPERFORMER^BOB",
    "OperatorsName": "QUIXOPERATOR^CARL",
    "NameOfPhysiciansReadingStudy": "RADLEYVOX^AURELIUS",
    "PhysiciansOfRecord": "QUIXRECORDDOC^DAN",
    "RequestingPhysician": "QUIXREQUESTER^EVE",
    "StationName": "QUIXSTATION",
    "StudyID": "QXSTUDYID88",
    "StudyDescription": "CT CHEST QUIXPATFAM Radleyvox protocol",
    "SeriesDescription": "AXIAL Quixreffam Uplandquist",
}

# The same identities as people type them into free text.
PATIENT_TYPED = ("Quixpatgiven QUIXPATFAM's scan (MRN qxmrn-7319046, mrn 7319046, acc "
                 "QXACC 5519372, DOB 05/03/1961, born 5 March 1961, 1961-03-05)")
SITE_TYPED = "from Quixinst Memorial Hospital, referred by Dr Quixreffam's team"
PEOPLE_TYPED = ("read by Dr Radleyvox's service (ARadleyvox, aradleyvox, A. Radleyvox, "
                "Dr Radleyvoxs, arv@sentinel.test), uploaded by Uplandquist")
EVERYTHING = f"{PATIENT_TYPED} {SITE_TYPED}; {PEOPLE_TYPED}."

PATIENT = ["quixpatfam", "quixpatgiven", "qxmrn", "7319046", "qxacc", "5519372", "qxotherid",
           "quixaddress", "quixphone", "quixmother", "19610305", "1961-03-05", "05/03/1961",
           "03/05/1961", "5 march 1961", "5 mar 1961", "qxstudyid"]
SITE = ["quixinst", "quixstreet", "quixdept", "quixreffam", "quixrefgiven", "quixperformer",
        "quixoperator", "quixrecorddoc", "quixrequester", "quixstation"]


def _people(*people: tuple[str, str]) -> list[str]:
    return [t for name, mail in people for t in (mail, *name.lower().split())]


FORBIDDEN = {
    "deid_reviewer": PATIENT + SITE + _people(READER, UPLOADER),
    "full_reviewer": SITE + _people(READER, UPLOADER),
    "member": PATIENT + SITE + _people(READER, UPLOADER, DEID_REVIEWER, FULL_REVIEWER),
    "attendee": PATIENT + SITE + _people(READER, UPLOADER, DEID_REVIEWER, FULL_REVIEWER,
                                         MEMBER),
    "consultant": PATIENT + SITE,
}
# A de-identified caller's DICOMweb instance URL (remapped UIDs).
DICOMWEB_INSTANCE = ("/dicomweb/studies/{study_uid}/series/{series_uid}/instances/"
                     "{instance_uid}")
# DICOMweb under the study's remapped UIDs: every viewer here is served de-identified.
DICOMWEB = ["/dicomweb/studies/{study_uid}",
            "/dicomweb/studies/{study_uid}/series/{series_uid}/metadata",
            "/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{instance_uid}"
            "/bulkdata/7FE00010"]
# The pages that must have been reached (and checked) for each viewer.
REACHED = {
    "deid_reviewer": ["/reviews/{a_deid}", "/reviews/{a_deid}/record.txt",
                      "/reviews/assignments.json", "/studies/{sid}", "/studies/{sid}/viewer",
                      "/studies/{sid}/series/{series}/frames.json",
                      "/studies/{sid}/deidentified.zip", "/studies/", "/reviews/",
                      DICOMWEB_INSTANCE + "/frames/1", DICOMWEB_INSTANCE + "/rendered",
                      "/dicomweb/studies/{study_uid}/thumbnail", "/marks/{mark}/key-images/0.png"],
    "full_reviewer": ["/reviews/{a_full}", "/reviews/{a_full}/record.txt",
                      "/reviews/assignments.json", "/studies/{sid}", "/studies/{sid}/viewer",
                      "/studies/{sid}/series/{series}/frames.json",
                      "/studies/{sid}/deidentified.zip"],
    "member": ["/reviews/committee/{case}", "/reviews/committee", "/studies/{sid}",
               "/studies/{sid}/series/{series}/frames.json", "/marks/{mark}/key-images/0.png"],
    "attendee": ["/reviews/conferences/{conf}", "/reviews/conferences", "/studies/{sid}",
                 "/studies/{sid}/viewer",
                 "/notifications/"],
    "consultant": ["/opinions/{req}", "/opinions/", "/studies/{sid}",
                   "/studies/{sid}/series/{series}/frames.json", "/notifications/",
                   DICOMWEB_INSTANCE + "/frames/1/rendered"],
}

# Every viewer above is served the study de-identified through DICOMweb: found under its
# remapped UIDs (the original ones answer 404, checked by the walk's UID sentinels).
DICOMWEB_REACHED = ["/dicomweb/studies", "/dicomweb/series", "/dicomweb/instances",
                    "/dicomweb/studies/{suid}/series",
                    "/dicomweb/studies/{suid}/series/{seuid}/instances"]


def _user(roles, person, **kw):
    return make_user(roles, full_name=person[0], email=person[1], **kw)


@pytest.fixture
def world(app, client, auth, db, tmp_path):
    reader = _user(["radiologist"], READER)
    uploader = _user(["radiologist"], UPLOADER)
    users = {
        "deid_reviewer": _user(["reviewer"], DEID_REVIEWER),
        "full_reviewer": _user(["reviewer", "radiologist"], FULL_REVIEWER),
        "member": _user(["reviewer"], MEMBER),
        "attendee": _user(["radiologist"], ATTENDEE),
        "consultant": _user(["radiologist"], CONSULTANT, licenses=["CA"]),
    }
    qa = make_user(["qa_manager"])
    db.session.commit()
    path = modified_copy("CT_small.dcm", tmp_path / "sentinel.dcm", **DICOM)
    auth.login(uploader)
    with open(path, "rb") as fh:
        resp = client.post("/studies/upload", content_type="multipart/form-data", data={
            "files": [(fh, "sentinel.dcm")], "finalize_now": "y", "reader_id": reader.id,
            "jurisdiction": "CA", "clinical_question": f"Nodule? {EVERYTHING}",
            "clinical_history": f"History: {EVERYTHING}",
            "report_text": f"Apical nodule.\n{EVERYTHING}\nSigned A. Radleyvox"})
    assert resp.status_code in (200, 302), resp.data[:300]
    auth.logout()
    study = db.session.scalars(sa.select(Study)).one()
    assert study.patient_id == DICOM["PatientID"] and study.read.reader_id == reader.id
    assert study.institution and study.referring_physician and study.patient_birth_date

    deid, full = users["deid_reviewer"], users["full_reviewer"]
    a_deid = make_assignment(study.read, deid, deidentified=True)
    a_full = make_assignment(study.read, full, deidentified=False)
    # The de-identified reviewer measured in the viewer (linked while the review was open).
    mark = make_mark(deid, study.series[0].instances[0], assignment=a_deid)
    service.reveal(a_full, f"Impression: {EVERYTHING}", full)
    service.submit(a_full, full, score="2a", category="perceptual",
                   comment=f"Full: {EVERYTHING}")
    service.reveal(a_deid, f"Impression: {EVERYTHING}", deid)
    review = service.submit(a_deid, deid, score="3b", category="perceptual",
                            comment=f"Missed. {EVERYTHING}", learning_case=True)
    case = review.case
    case_service.assign_committee(case, [users["member"]], qa)
    case_service.cast_vote(case, users["member"], "3b",
                           f"Agree with {DEID_REVIEWER[0]} ({DEID_REVIEWER[1]}). {EVERYTHING}")

    tc = learning.create_teaching_case(
        study, qa, title="Quixpatfam's apical nodule, MRN QXMRN7319046",
        teaching_point=f"Check the apices. {PATIENT_TYPED} {SITE_TYPED}.",
        category="perceptual", review=review)
    conf = learning.create_conference(qa, title="Peer learning: Quixpatfam (QXMRN7319046)",
                                      held_on=a_deid.assigned_at.date())
    learning.add_case(conf, tc, qa)
    learning.invite(conf, [users["attendee"]], qa)
    conf.learning_points = f"Learnt: {EVERYTHING}"
    conf.improvement_actions = f"Act: {PATIENT_TYPED} {SITE_TYPED}"

    req = opinions.create_request(
        study, uploader, priority="routine", question=f"Opinion? {PATIENT_TYPED} {SITE_TYPED}",
        history=f"Hx {PATIENT_TYPED} {SITE_TYPED}", preliminary=f"Prelim {PATIENT_TYPED}",
        colleague=users["consultant"], deidentified=True)
    opinions.accept(req, users["consultant"])
    opinions.post_message(req, uploader, f"Note: {PATIENT_TYPED} {SITE_TYPED}")
    db.session.commit()

    series = study.series[0]
    originals = [study.study_uid, series.series_uid, *(i.sop_uid for i in series.instances)]
    values = {
        "study_id": [study.id], "series_id": [series.id],
        "instance_id": [i.id for i in series.instances], "n": [0],
        "assignment_id": [a_deid.id, a_full.id], "case_id": [case.id],
        "review_id": [review.id, a_full.review.id], "conference_id": [conf.id],
        "request_id": [req.id],
        "user_id": [u.id for u in (reader, uploader, *users.values())],
        "batch_id": list(db.session.scalars(sa.select(UploadBatch.id))),
        "rule_id": [1], "run_id": [1], "document_id": ["0" * 32], "kind": sorted(REPORTS),
        "filename": ["css/app.css"], "peer_id": [1], "read_id": [1], "job_id": [1],
        "path": ["viewer"],
        "mark_id": [mark.id], "index": [0],
        **dicomweb_values(study),
    }
    remapped = {k: v[1] for k, v in dicomweb_values(study).items() if k.endswith("_uid")}
    ids = {"sid": study.id, "series": series.id, "a_deid": a_deid.id, "a_full": a_full.id,
           "case": case.id, "conf": conf.id, "req": req.id, "mark": mark.id, **remapped,
           "suid": remapped["study_uid"], "seuid": remapped["series_uid"]}
    return {"users": users, "values": values, "ids": ids,
            "original_uids": [u.lower() for u in originals]}


def _assert_clean(texts: list[str], forbidden: list[str], where: str) -> None:
    for text in texts:
        low = text.lower()
        for term in forbidden:
            assert term not in low, f"{term!r} leaked on {where}"


def _mails_to(app, address: str) -> list[str]:
    bodies = []
    for path in sorted(Path(app.config["OUTBOX_DIR"]).glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes())
        if msg["To"] == address:
            bodies.append(msg.as_string())
    return bodies


@pytest.mark.parametrize("who", sorted(FORBIDDEN))
def test_no_sentinel_reaches_a_blind_or_deidentified_viewer(app, client, auth, world, who):
    user = world["users"][who]
    forbidden = FORBIDDEN[who]
    assert auth.login(user).status_code == 302
    seen = {}
    for endpoint, url in get_urls(app, world["values"]):
        resp = client.get(url)
        seen[url] = resp.status_code
        if endpoint not in DIRECTORY:
            _assert_clean(_texts(resp), forbidden, f"{url} ({endpoint})")
        if endpoint.startswith("dicomweb."):  # the API speaks remapped UIDs only
            _assert_clean(_texts(resp), world["original_uids"], f"{url} ({endpoint})")
    # The de-identified copy with every option a viewer may tick.
    url = (f"/studies/{world['ids']['sid']}/deidentified.zip?retain_dates=y"
           "&retain_patient_characteristics=y&retain_device_identity=y")
    resp = client.get(url)
    assert resp.status_code == 200 and resp.mimetype == "application/zip"
    # Keeping the device identity is an Annex E option for de-identified sharing; refused
    # only to blind viewers, since a station name often names the site.
    kept = {"quixstation"} if who == "consultant" else set()
    _assert_clean(_texts(resp), [t for t in forbidden if t not in kept], url)
    for url in REACHED[who] + DICOMWEB_REACHED + DICOMWEB:
        url = url.format(**world["ids"])
        assert seen.get(url) == 200, (url, seen.get(url))
    found = client.get("/dicomweb/studies").json
    assert [r["0020000D"]["Value"][0] for r in found] == [world["ids"]["suid"]]
    mails = _mails_to(app, user.email)
    if who in ("member", "attendee", "consultant"):
        assert mails, "the viewer was notified by e-mail"
    _assert_clean(mails, forbidden, "an e-mail")
