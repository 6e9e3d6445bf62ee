"""The demo a radiologist believes: images, descriptions, pools and counts agree.

One seeded installation per test (the whole `qaportal demo`), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import io
import re
import zipfile

import sqlalchemy as sa
from pydicom import dcmread

from qaportal.demo import images, seed
from qaportal.extensions import db
from qaportal.models import (
    Instance,
    OpinionRequest,
    ReviewAssignment,
    SamplingRun,
    Series,
    Study,
    StudyAccess,
)
from qaportal.qa.sampling import replay_run
from qaportal.studies.demo import TEST_PATTERN
from qaportal.studies.storage import image_store

BY_DESCRIPTION = {e.description: e for e in images.EXAMS.values()}


def _header(inst: Instance):
    with image_store().open(inst.storage_key) as fh:
        return dcmread(fh, stop_before_pixels=True)


def test_seeded_data_agrees_with_its_images_and_pools(app):
    accounts, _, _ = seed()
    db.session.commit()
    # Counts add up: every study's counters are its rows, and a clinical study has images.
    series_rows = dict(db.session.execute(
        sa.select(Series.study_id, sa.func.count()).group_by(Series.study_id)).all())
    instance_rows = dict(db.session.execute(
        sa.select(Series.study_id, sa.func.count()).join(Instance)
        .group_by(Series.study_id)).all())
    studies = db.session.scalars(sa.select(Study)).all()
    for study in studies:
        assert study.series_count == series_rows.get(study.id, 0), study.study_description
        assert study.instance_count == instance_rows.get(study.id, 0), study.study_description
        assert study.instance_count > 0, study.study_description
    # Every seeded exam made from a catalogue image says what its stored file shows.
    for study in studies:
        exam = BY_DESCRIPTION.get(study.study_description)
        if exam is None:
            continue
        ds = _header(study.series[0].instances[0])
        assert ds.Modality == exam.modality == study.modalities
        assert study.body_part == exam.body_part
        if "BodyPartExamined" in ds:  # the demo's copies say it; imported samples do not
            assert (ds.BodyPartExamined, ds.StudyDescription) == (
                exam.body_part, exam.description)
        assert ds.StudyInstanceUID == study.study_uid and ds.PatientID == study.patient_id
    # Every sampled review can open its images: a grant from the assignment, de-identified,
    # and a reviewer of the exam's subspecialty when there is one.
    assignments = db.session.scalars(sa.select(ReviewAssignment)).all()
    assert len(assignments) >= 300
    grants = {(g.source_id, g.user_id): g.mode for g in db.session.scalars(
        sa.select(StudyAccess).where(StudyAccess.source_type == "review_assignment",
                                     StudyAccess.revoked_at.is_(None)))}
    for a in assignments:
        assert grants.get((a.id, a.reviewer_id)) == "deidentified" and a.deidentified
        exam = BY_DESCRIPTION[a.read.study.study_description]
        subs = a.reviewer.subspecialty_names
        assert exam.subspecialty in subs or "general" in subs
    neuro = [a for a in assignments if BY_DESCRIPTION[a.read.study.study_description]
             .subspecialty == "neuro"]
    assert neuro and all("neuro" in a.reviewer.subspecialty_names for a in neuro)
    # The run page's numbers: eligible reads = the reads assigned, and the draw replays.
    run = db.session.scalar(sa.select(SamplingRun))
    assert len(run.candidates) == len(run.selected) == len(assignments)
    assert replay_run(run) == run.selected
    # Second opinions: a pool question goes to the pool of its exam's subspecialty; no
    # request is about the test pattern; a STAT one is a real clinical exam.
    requests = db.session.scalars(sa.select(OpinionRequest)).all()
    assert len(requests) == 8
    for req in requests:
        exam = BY_DESCRIPTION[req.study.study_description]
        assert req.study.study_description != TEST_PATTERN
        assert req.study.clinical_question == req.clinical_question
        if req.pool:
            assert req.pool == exam.subspecialty, (req.clinical_question, req.pool)
        else:
            named = req.named_consultant.subspecialty_names
            assert exam.subspecialty in named or "general" in named
    for wrong in ("lumbar", "meniscus", "nodule"):  # questions with no image to answer them
        assert not any(wrong in r.clinical_question.lower() for r in requests
                       if r.study.body_part not in ("CHEST",))
    pattern = db.session.scalar(sa.select(Study).where(Study.study_description == TEST_PATTERN))
    assert pattern is not None and pattern.read is None and not pattern.clinical_question


def test_demo_first_screens_show_real_images(app, client, auth):
    accounts, password, _ = seed()
    db.session.commit()
    for key in ("radiologist", "radiologist2", "reviewer", "qa_manager", "admin"):
        auth.login(accounts[key], password)
        assert client.get("/").status_code == 200, key
        auth.logout()
    # The reviewer opens a review from the worklist, then its images: real frames.
    auth.login(accounts["reviewer"], password)
    worklist = client.get("/reviews/").get_data(as_text=True)
    assignment_id = int(re.search(r'href="/reviews/(\d+)"', worklist).group(1))
    page = client.get(f"/reviews/{assignment_id}").get_data(as_text=True)
    viewer = re.search(r'id="open-viewer" href="([^"]+)"', page).group(1)
    # The clinical notes read as a referrer wrote them: nothing in them is an identifier.
    kind = BY_DESCRIPTION[db.session.get(ReviewAssignment, assignment_id).read.study
                          .study_description].key
    assert images.HISTORIES[kind] in page and "[removed]" not in page
    assert client.get(viewer).status_code == 200
    a = db.session.get(ReviewAssignment, assignment_id)
    study = a.read.study
    frames = client.get(f"/studies/{study.id}/series/{study.series[0].id}/frames.json").json
    assert frames["overlay"]["deidentified"] and frames["frames"]
    png = client.get(frames["frames"][0]["url"])
    assert png.status_code == 200 and png.data.startswith(b"\x89PNG")
    # A de-identified download of a seeded study holds its image, without the demo name.
    zipped = client.get(f"/studies/{study.id}/deidentified.zip")
    assert zipped.status_code == 200
    with zipfile.ZipFile(io.BytesIO(zipped.data)) as zf:
        dicoms = [n for n in zf.namelist() if n.lower().endswith(".dcm")]
        assert dicoms
        ds = dcmread(io.BytesIO(zf.read(dicoms[0])))
    assert ds.pixel_array.size and str(ds.get("PatientName", "")) != study.patient_name
    family = study.patient_name.split("^")[0]
    assert family and family not in str(ds.get("PatientName", ""))
    auth.logout()
    # The radiologist's own study opens in the viewer with its frames.
    auth.login(accounts["radiologist"], password)
    mine = db.session.scalar(sa.select(Study).where(
        Study.owner_id == accounts["radiologist"].id,
        Study.study_description == "CT HEAD W/O CONTRAST").order_by(Study.id))
    assert client.get(f"/studies/{mine.id}/viewer").status_code == 200
    frames = client.get(f"/studies/{mine.id}/series/{mine.series[0].id}/frames.json").json
    assert client.get(frames["frames"][0]["url"]).status_code == 200
    auth.logout()
    # The QA manager's run page: as many eligible reads as assigned, parameters in words.
    auth.login(accounts["qa_manager"], password)
    run = db.session.scalar(sa.select(SamplingRun))
    page = client.get(f"/qa/runs/{run.id}").get_data(as_text=True)
    eligible = re.search(r"<dt>Eligible reads</dt><dd>(\d+)</dd>", page).group(1)
    assert int(eligible) == len(run.assignments) > 0
    assert "reads per reader per month" in page and '{"' not in page
    assert "replaying the seed over the recorded candidates gives the same selection" in page
    # Storage integrity holds with the images the demo stored.
    result = app.test_cli_runner().invoke(args=["verify-storage"])
    assert result.exit_code == 0, result.output
