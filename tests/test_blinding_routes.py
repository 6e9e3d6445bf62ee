"""Blinding on every route: walk app.url_map and request every GET route as the reviewer,
a committee member and the reader, with URL values taken from one QA world; the names the
user must not learn appear in no response (HTML, JSON, text, zip names and contents). A
claim of a second opinion on the study and its case-packet export are walked too.

Like tests/permission_matrix.py, the walk reads the routes from the app, so a new route
cannot escape: a URL value this file does not know how to fill fails the test.
"""

from __future__ import annotations

import io
import zipfile
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from qaportal.models import License, Notification, Study, UploadBatch, UserSubspecialty
from qaportal.opinions import service as opinions
from qaportal.qa import cases as case_service
from qaportal.qa import learning
from qaportal.reports.registry import REPORTS
from qaportal.reviews import service
from tests.factories import make_assignment, make_user
from tests.marks_world import make_mark
from tests.pdftools import pdf_text
from tests.route_walk import dicomweb_values, get_urls
from tests.studyfiles import modified_copy

READER = ("Zebulon Quirkfeather", "zebq@blind.test")
REVIEWER = ("Ottoline Vantablack", "ottv@blind.test")
MEMBER = ("Peregrine Snodgrass", "pers@blind.test")


def _terms(*people: tuple[str, str]) -> list[str]:
    terms = []
    for name, email in people:
        terms += [email.lower(), *(p.lower() for p in name.split())]
    return terms


@pytest.fixture
def world(app, client, auth, db, tmp_path):
    reader = make_user(["radiologist"], full_name=READER[0], email=READER[1])
    reviewer = make_user(["reviewer", "radiologist"], full_name=REVIEWER[0],
                         email=REVIEWER[1])
    member = make_user(["reviewer"], full_name=MEMBER[0], email=MEMBER[1])
    qa = make_user(["qa_manager"])
    db.session.commit()
    # The reader uploads a real study: their name is in the DICOM header and the series
    # description, and the notes and the report name them.
    path = modified_copy("CT_small.dcm", tmp_path / "ct.dcm",
                         NameOfPhysiciansReadingStudy="Quirkfeather^Zebulon",
                         OperatorsName="Quirkfeather^Zebulon",
                         SeriesDescription="AXIAL Quirkfeather",
                         StudyDescription="CT CHEST Quirkfeather protocol")
    auth.login(reader)
    with open(path, "rb") as fh:
        resp = client.post("/studies/upload", content_type="multipart/form-data",
                           data={"files": [(fh, "ct.dcm")], "finalize_now": "y",
                                 "report_text": f"Nodule.\nSigned {READER[0]} ({READER[1]})"})
    assert resp.status_code in (200, 302), resp.data[:300]
    auth.logout()
    study = db.session.scalars(sa.select(Study)).one()
    study.clinical_history = f"Discussed with Dr. Quirkfeather ({READER[1]})."
    # The reviewer sees it in full, scores 3b naming the reader; a committee member scores
    # naming the reviewer; QA decides naming both; the reader gets the feedback.
    a = make_assignment(study.read, reviewer, deidentified=False)
    mark = make_mark(reviewer, study.series[0].instances[0], assignment=a)  # from the viewer
    service.reveal(a, "Apical nodule?", reviewer)
    review = service.submit(a, reviewer, score="3b", category="perceptual",
                            comment="Missed the apical nodule", learning_case=True)
    case = review.case
    case_service.assign_committee(case, [member], qa)
    case_service.cast_vote(case, member, "3b", f"Agree with {REVIEWER[0]} ({REVIEWER[1]})")
    case_service.record_decision(case, qa, final_score="3b", outcome="upheld",
                                 rationale=f"{REVIEWER[0]} and {MEMBER[0]} agree.")
    # A conference on the case, attended by all three.
    tc = learning.create_teaching_case(study, qa, title="Apical nodule",
                                       teaching_point="Check the apices.",
                                       category="perceptual", review=review)
    conf = learning.create_conference(qa, title="Peer learning",
                                      held_on=a.assigned_at.date())
    learning.add_case(conf, tc, qa)
    learning.invite(conf, [reader, reviewer, member], qa)
    db.session.commit()
    series = study.series[0]
    values = {
        "study_id": [study.id], "series_id": [series.id],
        "instance_id": [i.id for i in series.instances], "n": [0],
        "assignment_id": [a.id], "case_id": [case.id], "review_id": [review.id],
        "conference_id": [conf.id],
        "user_id": [reader.id, reviewer.id, member.id],
        "batch_id": list(db.session.scalars(sa.select(UploadBatch.id)
                                            .where(UploadBatch.user_id == reader.id))),
        # No objects of these kinds in this world: the route still answers (404/403).
        "request_id": [1], "rule_id": [1], "run_id": [1], "document_id": ["0" * 32],
        "kind": sorted(REPORTS),
        "filename": ["css/app.css"], "peer_id": [1], "read_id": [1], "job_id": [1],
        "path": ["viewer"],
        "mark_id": [mark.id], "index": [0],
        **dicomweb_values(study),
    }
    return {"reader": reader, "reviewer": reviewer, "member": member, "values": values,
            "assignment": a, "case": case, "conf": conf, "study": study, "mark": mark}


def _texts(resp) -> list[str]:
    """Return the response's text, and for a zip its member names and contents."""
    data = resp.get_data()
    if resp.mimetype == "application/zip":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return list(zf.namelist()) + [zf.read(n).decode("latin-1")
                                                 for n in zf.namelist()]
    if resp.mimetype.startswith("image/"):
        return []
    return [data.decode("utf-8", "replace"), resp.headers.get("Content-Disposition", "")]


# The upload form (who read the study) and the second-opinion form for a study one may
# request on (consultants) list colleagues by name; such a directory says nothing about who
# reviewed or read what, so its body is not checked. The reviewer's refusal on
# opinions.new for a blind study is checked in test_blind_reviewer_cannot_request_an_opinion.
DIRECTORY = frozenset({"studies.upload", "opinions.new"})


def _walk(app, client, auth, user, values, hidden: list[str],
          directory: frozenset[str] = DIRECTORY) -> dict[str, int]:
    auth.logout()
    assert auth.login(user).status_code == 302
    seen = {}
    for endpoint, url in get_urls(app, values):
        resp = client.get(url)
        seen[url] = resp.status_code
        if endpoint in directory:
            continue
        for text in _texts(resp):
            low = text.lower()
            for term in hidden:
                assert term not in low, f"{term!r} leaked on {url} ({endpoint})"
    return seen


def test_reviewer_never_sees_the_reader_on_any_route(app, client, auth, world):
    w = world
    seen = _walk(app, client, auth, w["reviewer"], w["values"], _terms(READER))
    sid, aid = w["study"].id, w["assignment"].id
    for url in (f"/studies/{sid}", f"/studies/{sid}/viewer", f"/studies/{sid}/deidentified.zip",
                f"/reviews/{aid}", f"/reviews/{aid}/record.txt", "/reviews/assignments.json",
                f"/reviews/conferences/{w['conf'].id}",
                f"/marks/{w['mark'].id}/key-images/0.png"):
        assert seen[url] == 200, url  # the walk reached the pages that matter


def test_committee_member_never_sees_the_reader_or_reviewer(app, client, auth, world):
    w = world
    seen = _walk(app, client, auth, w["member"], w["values"], _terms(READER, REVIEWER))
    for url in (f"/reviews/committee/{w['case'].id}", "/reviews/committee",
                f"/studies/{w['study'].id}", f"/studies/{w['study'].id}/viewer",
                f"/marks/{w['mark'].id}/key-images/0.png"):
        assert seen[url] == 200, url


def test_reader_never_sees_the_reviewer_or_committee(app, client, auth, world):
    w = world
    seen = _walk(app, client, auth, w["reader"], w["values"], _terms(REVIEWER, MEMBER))
    for url in (f"/reviews/feedback/{w['case'].id}", "/reviews/feedback",
                f"/studies/{w['study'].id}", f"/reviews/conferences/{w['conf'].id}"):
        assert seen[url] == 200, url


def test_blind_reviewer_cannot_request_an_opinion(app, client, auth, world):
    """The request form carries the study's notes; a blind reviewer with full images (and
    the radiologist role) gets no form, so no notes naming the reader."""
    w = world
    auth.login(w["reviewer"])
    resp = client.get(f"/opinions/new/{w['study'].id}")
    assert resp.status_code in (403, 404)
    assert "zebq@blind.test" not in resp.get_data(as_text=True).lower()
    body = client.get(f"/studies/{w['study'].id}").get_data(as_text=True)
    assert f"/opinions/new/{w['study'].id}" not in body


def test_reviewer_who_uploads_the_reviewed_study_still_never_sees_the_reader(
        app, client, auth, db, world, tmp_path):
    """Knowing the study's UIDs gives nothing: the blind reviewer uploads the
    reader's very file and a new one carrying the study's UID, then walks every route."""
    import pydicom

    from qaportal.studies.storage import image_store

    w = world
    inst = w["study"].series[0].instances[0]
    theirs = tmp_path / "upload" / "theirs.dcm"
    theirs.parent.mkdir()
    theirs.write_bytes(image_store().read_verified(inst.storage_key, inst.sha256))
    ds = pydicom.dcmread(theirs)
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.NameOfPhysiciansReadingStudy = ds.OperatorsName = "Other^Someone"
    ds.SeriesDescription = ds.StudyDescription = "MINE"
    fresh = tmp_path / "upload" / "fresh.dcm"
    ds.save_as(fresh)
    auth.logout()
    auth.login(w["reviewer"])
    urls = client.post("/studies/upload/batches").get_json()
    for path in (fresh, theirs):  # fresh first: the reviewer's own copy is described "MINE"
        with open(path, "rb") as fh:
            resp = client.post(urls["files_url"], content_type="multipart/form-data",
                               data={"files": [(fh, path.name)]})
        assert resp.status_code == 200
    assert client.post(urls["finish_url"], data={}).status_code == 200
    values = {**w["values"], "batch_id": [*w["values"]["batch_id"], urls["batch_id"]]}
    # The original UIDs now name the reviewer's own copy, which DICOMweb serves them as they
    # uploaded it (their own file); the reviewed study answers only under remapped UIDs.
    for part in ("study_uid", "series_uid", "instance_uid"):
        values[part] = values[part][1:]
    original = w["study"].study_uid
    own = client.get(f"/dicomweb/studies/{original}/metadata")
    assert own.status_code == 200
    assert {i["00080018"]["Value"][0] for i in own.get_json()} == {
        inst.sop_uid, str(ds.SOPInstanceUID)}
    seen = _walk(app, client, auth, w["reviewer"], values, _terms(READER))
    sid = w["study"].id
    assert seen[f"/studies/{sid}"] == 200 and seen[f"/studies/{sid}/viewer"] == 200
    assert seen[f"/studies/upload/batches/{urls['batch_id']}"] == 200
    copy = db.session.scalars(
        sa.select(Study).where(Study.owner_id == w["reviewer"].id)).one()  # their own study
    assert copy.id != sid and copy.instance_count == 2


def test_claim_and_case_packet_export_stay_blind(app, client, auth, world, db):
    """The reviewer, also a licensed neuro radiologist, is neither notified of nor allowed to
    claim the reader's pool request on the study; the walk with that request finds the
    reader nowhere; the reader's case packet for it names neither reviewer nor member."""
    w = world
    reader, reviewer, study = w["reader"], w["reviewer"], w["study"]
    reviewer.licenses.append(License(jurisdiction="CA", number="CA-BLIND-1",
                                     valid_from=date.today() - timedelta(days=30),
                                     valid_to=date.today() + timedelta(days=300)))
    reviewer.subspecialties.append(UserSubspecialty(subspecialty="neuro"))
    peer = make_user(["radiologist"], subspecialties=["neuro"], licenses=["CA"])
    study.jurisdiction = "CA"
    req = opinions.create_request(study, reader, priority="routine", pool="neuro",
                                  question="Second look at the apex?")
    db.session.commit()
    notified = set(db.session.scalars(sa.select(Notification.user_id)
                                      .where(Notification.kind == "opinion.new")))
    assert peer.id in notified and reviewer.id not in notified
    auth.login(reviewer)
    resp = client.post(f"/opinions/{req.id}/claim", follow_redirects=True)
    assert "you hold a blind role on its study" in resp.get_data(as_text=True)
    db.session.refresh(req)
    assert req.status == "open" and req.consultant_id is None
    values = {**w["values"], "request_id": [req.id]}
    seen = _walk(app, client, auth, reviewer, values, _terms(READER))
    assert seen[f"/opinions/{req.id}"] == 404 and seen[f"/studies/{study.id}"] == 200
    # The reader, who asked, exports the request's case packet (after the reviewer's views).
    auth.logout()
    auth.login(reader)
    resp = client.post("/reports/case/export", data={"request": str(req.id),
                                                     "deidentified": "y"},
                       headers={"Accept": "application/json"})
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    text = pdf_text(client.get(resp.get_json()["download_url"]).data).lower()
    assert "audit trail excerpt" in text
    for term in _terms(REVIEWER, MEMBER):
        assert term not in text, f"{term!r} named in the case packet"
