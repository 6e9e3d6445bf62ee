"""A blind reviewer's viewer marks: the SR references the remapped UIDs the reviewer was
served; STOW-RS links it to the open assignment with the images mapped back to the original
instances, and nothing original comes back (response, pages). The committee sees the
reviewer's marks unnamed; the reader and other reviewers get 404 on the key images."""

from __future__ import annotations

import sqlalchemy as sa

from qaportal.dicomweb.access import deid_context
from qaportal.extensions import db
from qaportal.models import Instance, Series, Study, ViewerMark, utcnow
from qaportal.qa import cases as cs
from qaportal.reviews import service as review_service
from tests.dicomweb_helpers import DICOM_ANY, datasets
from tests.factories import make_assignment, make_user
from tests.marks_objects import key_object_selection, measurement_report
from tests.marks_world import PATIENT, ingest_ct, stow


def _originals(study: Study) -> list[str]:
    """Every original UID of the study, and the patient's name and ID."""
    uids = [study.study_uid]
    for s in study.series:
        uids.append(s.series_uid)
        uids.extend(i.sop_uid for i in s.instances)
    return [*uids, *PATIENT, "MARKSPATIENT", "QUOKKA"]


def test_blind_reviewer_marks_map_to_the_originals_and_leak_nothing(app, client, auth,
                                                                     tmp_path):
    reader = make_user(["radiologist"], full_name="Dr Rita Reader")
    db.session.commit()
    study = ingest_ct(reader, tmp_path / "ct")
    study.read.finalized_at = utcnow()
    reviewer = make_user(["reviewer"], full_name="Dr Vera Reviewer")
    bystander = make_user(["reviewer"])
    member = make_user(["reviewer"])
    qa = make_user(["qa_manager"])
    assignment = make_assignment(study.read, reviewer, deidentified=True)
    db.session.commit()
    forbidden = _originals(study)
    auth.login(reviewer)
    served_study = deid_context(study).new_uid_for(study.study_uid)
    got = client.get(f"/dicomweb/studies/{served_study}", headers={"Accept": DICOM_ANY})
    assert got.status_code == 200
    served = sorted(datasets(got), key=lambda d: int(d.InstanceNumber))
    assert all(d.SOPInstanceUID not in forbidden for d in served)
    sr = measurement_report(served[:2])
    # A reviewer stores marks only, naming the review.
    r = stow(client, sr)
    assert r.status_code == 403 and "review-assignment:<id>" in r.get_json()["error"]
    r = stow(client, sr, key_object_selection(served[2:3]),
             context=f"review-assignment:{assignment.id}")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.headers["X-QAPortal-Marks-Linked"] == f"review-assignment:{assignment.id}"
    answer = r.get_data(as_text=True) + str(dict(r.headers))
    for value in forbidden:
        assert value not in answer, value
    sr_mark, kos_mark = db.session.scalars(sa.select(ViewerMark).order_by(ViewerMark.id))
    by_number = {i.instance_number: i.id for i in db.session.scalars(
        sa.select(Instance).join(Series).where(Series.study_id == study.id))}
    assert [m["image_id"] for m in sr_mark.measurements] == [by_number[1], by_number[1],
                                                              by_number[2]]
    assert kos_mark.key_images == [{"image_id": by_number[3], "frame": None}]
    assert sr_mark.review_assignment_id == assignment.id and sr_mark.author_id == reviewer.id
    # Stored in the reviewer's own copy, under the served (remapped) UIDs only.
    own = db.session.get(Instance, sr_mark.instance_id).series.study
    assert own.owner_id == reviewer.id and own.study_uid == served_study
    assert own.patient_name not in (PATIENT[0], "") and "MARKSPATIENT" not in own.patient_name
    # After saving marks the reviewer's viewer still reads the images: a copy of documents
    # only is served only when no copy with images shares the UID.
    again = client.get(f"/dicomweb/studies/{served_study}", headers={"Accept": DICOM_ANY})
    assert again.status_code == 200
    assert sorted(d.SOPInstanceUID for d in datasets(again)) == sorted(
        d.SOPInstanceUID for d in served)
    listed = client.get("/dicomweb/studies", query_string={"StudyInstanceUID": served_study},
                        headers={"Accept": "application/dicom+json"}).get_json()
    assert len(listed) == 1, listed
    # Only a structured report or KOS: an image under the review's context is refused.
    r = stow(client, served[0], context=f"review-assignment:{assignment.id}")
    assert r.status_code == 409
    # The reviewer's page: their marks, no original identifier.
    page = client.get(f"/reviews/{assignment.id}").get_data(as_text=True)
    assert "Your viewer measurements" in page and "Length 23.4 mm" in page
    for value in forbidden:
        assert value not in page, value
    record = client.get(f"/reviews/{assignment.id}/record.txt").get_data(as_text=True)
    assert "Viewer measurements:" in record and "- Lesion 1: Length 23.4 mm, Lung" in record
    url = f"/marks/{sr_mark.id}/key-images/0.png"
    assert client.get(url).status_code == 200
    # Submitted: later marks are stored, not linked.
    assignment.revealed_at = utcnow()
    review = review_service.submit(assignment, reviewer, score="3b", category="perceptual",
                                   comment="Missed nodule.")
    db.session.commit()
    r = stow(client, measurement_report(served[:1]),
             context=f"review-assignment:{assignment.id}")
    assert r.status_code == 200 and "submitted" in r.headers["Warning"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ViewerMark)) == 2
    # The committee sees the reviewer's marks unnamed; others get 404.
    case = review.case
    cs.assign_committee(case, [member], by=qa)
    db.session.commit()
    auth.logout()
    auth.login(member)
    page = client.get(f"/reviews/committee/{case.id}").get_data(as_text=True)
    assert "The reviewer's viewer measurements" in page or \
        "The reviewer&#39;s viewer measurements" in page
    assert "Nodule A" in page and "Dr Vera Reviewer" not in page
    for value in forbidden:
        assert value not in page, value
    assert client.get(url).status_code == 200
    for other in (reader, bystander):
        auth.logout()
        auth.login(other)
        assert client.get(url).status_code == 404
