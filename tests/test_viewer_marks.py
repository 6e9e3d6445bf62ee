"""Viewer marks through STOW-RS: an SR or KOS from the consultant's viewer is linked to the
open opinion, shown on the request page and in the case packet with its key image drawn;
refused for linking after signature (but stored); immutable in the database once signed;
the context header checked; the key-image route checks who asks."""

from __future__ import annotations

import io
import re

import pytest
import sqlalchemy as sa
from PIL import Image

from qaportal.extensions import db
from qaportal.models import AuditEvent, Instance, ViewerMark
from qaportal.models.viewer_mark import ImmutableMarksError
from qaportal.opinions import service, signing
from qaportal.reports.service import create_export
from tests.factories import DEFAULT_PASSWORD, make_user
from tests.marks_objects import key_object_selection, measurement_report
from tests.marks_world import stored_datasets, stow
from tests.pdftools import pdf_text

OPINION = {"findings": "Solid nodule.", "impression": "Solid 23 mm nodule.",
           "agreement": "minor", "recommendations": "CT in 3 months.",
           "coverage_answer": "", "coverage_text": ""}


def _marks() -> list[ViewerMark]:
    return list(db.session.scalars(sa.select(ViewerMark).order_by(ViewerMark.id)))


def test_consultant_sr_is_linked_shown_and_in_the_case_packet(client, auth, opinion_case):
    c, req, study = opinion_case, opinion_case["req"], opinion_case["study"]
    images = stored_datasets(study)
    auth.login(c["consultant"])
    r = stow(client, measurement_report(images[:2]), key_object_selection(images[2:3]))
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.headers["X-QAPortal-Marks-Linked"] == f"opinion-request:{req.id}"
    assert "Warning" not in r.headers
    sr_mark, kos_mark = _marks()
    assert (sr_mark.kind, kos_mark.kind, kos_mark.title) == ("sr", "kos", "Of Interest")
    originals = {i.sop_uid: i.id for i in db.session.scalars(sa.select(Instance))}
    first, second = (originals[d.SOPInstanceUID] for d in images[:2])
    assert [m["image_id"] for m in sr_mark.measurements] == [first, first, second]
    assert [m["graphic_type"] for m in sr_mark.measurements] == ["POLYLINE", "ELLIPSE", "POINT"]
    assert kos_mark.key_images == [{"image_id": originals[images[2].SOPInstanceUID],
                                    "frame": None}]
    assert "sop_uid" not in str(sr_mark.measurements)
    linked = db.session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == "viewer_marks.linked")).all()
    assert [(e.object_type, e.object_id) for e in linked] == [("opinion_requests",
                                                               str(req.id))] * 2
    # The request page, for the consultant and the requester.
    for who in (c["consultant"], c["requester"]):
        auth.logout()
        auth.login(who)
        page = client.get(f"/opinions/{req.id}").get_data(as_text=True)
        for needle in ("Viewer measurements", "Lesion 1", "Length 23.4 mm", "Area 151 mm²",
                       "Calcification", "Series 1 · image 1", "Lung"):
            assert needle in page, needle
        url = f"/marks/{sr_mark.id}/key-images/0.png"
        assert url in page
        png = client.get(url)
        assert png.status_code == 200 and png.mimetype == "image/png"
        assert Image.open(io.BytesIO(png.data)).size[0] > 64
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "viewer_marks.key_image_viewed")) == 2
    # Signed: the case packet carries the measurements and the drawn key images.
    signing.save_draft(req, c["consultant"], OPINION)
    signing.sign(req, c["consultant"], DEFAULT_PASSWORD)
    db.session.commit()
    _, pdf = create_export("case", {"request": req.id, "deidentified": True,
                                    "confidential": False}, c["requester"])
    text = re.sub(r"\s+", " ", pdf_text(pdf.data))
    for needle in ("Viewer measurements", "Lesion 1", "Length 23.4 mm", "Nodule A",
                   "Calcification", "Key images marked in the viewer"):
        assert needle in text, needle
    assert "MARKSPATIENT" not in text


def test_after_signature_an_sr_is_stored_but_not_linked(client, auth, opinion_case):
    c, req, study = opinion_case, opinion_case["req"], opinion_case["study"]
    images = stored_datasets(study)
    signing.save_draft(req, c["consultant"], OPINION)
    signing.sign(req, c["consultant"], DEFAULT_PASSWORD)
    db.session.commit()
    auth.login(c["consultant"])
    sr = measurement_report(images[:1])
    r = stow(client, sr)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert "X-QAPortal-Marks-Linked" not in r.headers
    assert f"opinion request {req.id} is signed" in r.headers["Warning"]
    assert r.headers["Warning"].startswith('299 qaportal "not linked')
    assert _marks() == []
    assert db.session.scalar(sa.select(Instance).where(Instance.sop_uid == sr.SOPInstanceUID))
    # Naming it changes nothing: stored, not linked, the same reason.
    r = stow(client, measurement_report(images[:1]), context=f"opinion-request:{req.id}")
    assert r.status_code == 200 and "is signed" in r.headers["Warning"] and _marks() == []


def test_marks_of_a_signed_opinion_are_immutable(client, auth, opinion_case):
    c, req, study = opinion_case, opinion_case["req"], opinion_case["study"]
    auth.login(c["consultant"])
    assert stow(client, measurement_report(stored_datasets(study)[:1])).status_code == 200
    (mark,) = _marks()
    mark.title = "Edited while open"  # open: may change
    db.session.commit()
    signing.save_draft(req, c["consultant"], OPINION)
    signing.sign(req, c["consultant"], DEFAULT_PASSWORD)
    db.session.commit()
    mark.title = "Edited after signing"
    with pytest.raises(ImmutableMarksError):
        db.session.flush()
    db.session.rollback()
    for stmt in ("UPDATE viewer_marks SET title = 'raw edit'", "DELETE FROM viewer_marks",
                 "INSERT INTO viewer_marks (opinion_request_id, instance_id, kind, title, "
                 "author_id, created_at, measurements, key_images) VALUES (:req, :inst, 'sr', "
                 "'late', :author, CURRENT_TIMESTAMP, '[]', '[]')"):
        with pytest.raises(sa.exc.DBAPIError, match="immutable"):
            with db.session.begin_nested():
                db.session.execute(sa.text(stmt), {"req": req.id, "author": mark.author_id,
                                                   "inst": mark.instance_id + 1000})
    db.session.rollback()
    assert [m.title for m in _marks()] == ["Edited while open"]


def test_context_header_is_checked(client, auth, login_as, opinion_case):
    c, req, study = opinion_case, opinion_case["req"], opinion_case["study"]
    images = stored_datasets(study)
    auth.login(c["consultant"])
    before = db.session.scalar(sa.select(sa.func.count()).select_from(Instance))
    r = stow(client, measurement_report(images[:1]), context="opinion:12")
    assert r.status_code == 400 and "opinion-request:<id>" in r.get_json()["error"]
    r = stow(client, measurement_report(images[:1]), context="opinion-request:999999")
    assert r.status_code == 409 and "not a draft of yours" in r.get_json()["error"]
    auth.logout()
    other = login_as("radiologist")
    r = stow(client, measurement_report(images[:1]), context=f"opinion-request:{req.id}")
    assert r.status_code == 409 and "not a draft of yours" in r.get_json()["error"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Instance)) == before
    # A document of another study under this request's context: refused (A900), not stored.
    auth.logout()
    auth.login(c["consultant"])
    foreign = measurement_report(images[:1])
    foreign.StudyInstanceUID = "2.25.1234567"
    r = stow(client, foreign, context=f"opinion-request:{req.id}")
    assert r.status_code == 409
    assert r.get_json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xA900]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Instance)) == before
    assert other.id != c["consultant"].id and _marks() == []


def test_malformed_sr_is_stored_but_not_linked_with_the_reason(client, auth, opinion_case):
    c, study = opinion_case, opinion_case["study"]
    sr = measurement_report(stored_datasets(study)[:1])
    group = next(i for i in sr.ContentSequence if i.ValueType == "CONTAINER")
    group.ContentSequence = []
    auth.login(c["consultant"])
    r = stow(client, sr)
    assert r.status_code == 200
    assert "no measurement group" in r.headers["Warning"] and _marks() == []
    # A label with a line break and non-ASCII text in a refused region: a clean header.
    sr = measurement_report(stored_datasets(study)[:1])
    imaging = next(i for i in sr.ContentSequence if i.ValueType == "CONTAINER")
    group = imaging.ContentSequence[0]  # the length's measurement group
    label = next(i for i in group.ContentSequence if i.ValueType == "TEXT")
    label.TextValue = "Läsion\r\nX-Injected: 1"
    region = next(i for i in group.ContentSequence if i.ValueType == "SCOORD")
    region.GraphicType = "SPLINE"
    r = stow(client, sr)
    assert r.status_code == 200 and "X-Injected" not in r.headers
    assert "unknown graphic type 'SPLINE'" in r.headers["Warning"]
    assert "L?sion??X-Injected: 1" in r.headers["Warning"]


def test_key_image_route_checks_who_asks(client, auth, login_as, opinion_case):
    c, study = opinion_case, opinion_case["study"]
    auth.login(c["consultant"])
    assert stow(client, measurement_report(stored_datasets(study)[:2])).status_code == 200
    (mark,) = _marks()
    url = f"/marks/{mark.id}/key-images/0.png"
    assert client.get(url).status_code == 200
    assert client.get(f"/marks/{mark.id}/key-images/9.png").status_code == 404
    assert client.get(f"/marks/{mark.id + 1}/key-images/0.png").status_code == 404
    auth.logout()
    for role in ("radiologist", "reviewer", "qa_manager"):
        login_as(role)
        assert client.get(url).status_code == (200 if role == "qa_manager" else 404), role
        auth.logout()
    assert client.get(url).status_code in (302, 401)
    make_user()  # bystanders exist; nothing leaks to them


def test_several_open_drafts_need_the_context_header(client, auth, opinion_case):
    c, req, study = opinion_case, opinion_case["req"], opinion_case["study"]
    second = service.create_request(study, c["requester"], priority="urgent",
                                    question="And the adrenal?", colleague=c["consultant"])
    service.accept(second, c["consultant"])
    db.session.commit()
    images = stored_datasets(study)
    auth.login(c["consultant"])
    r = stow(client, measurement_report(images[:1]))
    assert r.status_code == 200 and _marks() == []
    assert "several open drafts" in r.headers["Warning"]
    assert f"opinion-request:{req.id}" in r.headers["Warning"]
    r = stow(client, measurement_report(images[:1]), context=f"opinion-request:{second.id}")
    assert r.headers["X-QAPortal-Marks-Linked"] == f"opinion-request:{second.id}"
    assert [m.opinion_request_id for m in _marks()] == [second.id]


def test_deidentified_request_links_through_the_remapped_uids(client, auth, tmp_path, app):
    from qaportal.dicomweb.access import deid_context
    from tests.dicomweb_helpers import DICOM_ANY, datasets
    from tests.factories import make_certification
    from tests.marks_world import ingest_ct

    requester = make_user(licenses=["CA"])
    consultant = make_user(subspecialties=["body"], licenses=["CA"], full_name="Dr Deid")
    make_certification(consultant)
    db.session.commit()
    study = ingest_ct(requester, tmp_path / "ct")
    req = service.create_request(study, requester, priority="routine", question="Solid?",
                                 colleague=consultant, deidentified=True)
    service.accept(req, consultant)
    db.session.commit()
    auth.login(consultant)
    served_uid = deid_context(study).new_uid_for(study.study_uid)
    got = client.get(f"/dicomweb/studies/{served_uid}", headers={"Accept": DICOM_ANY})
    served = sorted(datasets(got), key=lambda d: int(d.InstanceNumber))
    r = stow(client, measurement_report(served[:1]))
    assert r.headers.get("X-QAPortal-Marks-Linked") == f"opinion-request:{req.id}", \
        r.headers.get("Warning")
    assert study.study_uid not in r.get_data(as_text=True)
    (mark,) = _marks()
    first = db.session.scalar(sa.select(Instance.id).where(
        Instance.sop_uid == stored_datasets(study)[0].SOPInstanceUID))
    assert mark.measurements[0]["image_id"] == first
