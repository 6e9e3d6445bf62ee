"""The demo imports real image studies, so a newcomer sees studies at once."""

from __future__ import annotations

import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import Instance, Study
from qaportal.studies import demo
from qaportal.studies.storage import image_store
from tests.factories import make_user


def test_demo_step_imports_image_studies_once(app, monkeypatch):
    monkeypatch.setattr(demo, "GENERATED_SLICES", 4)  # keep it fast; the code path is the same
    owner = make_user(roles=("radiologist",))
    db.session.commit()
    message = demo.seed_studies({"radiologist": owner})
    db.session.commit()
    studies = db.session.scalars(sa.select(Study).where(Study.owner_id == owner.id)).all()
    available = [name for name, *_ in demo.SAMPLES if demo._sample_path(name)]
    # Every sample but the RLE copy of MR_small (a duplicate) is a study, plus the generated CT.
    assert len(studies) == len(available) - ("MR_small_RLE.dcm" in available) + 1
    assert message.startswith(f"Demo studies: {len(available) - 1 + 4} images")
    by_description = {s.study_description: s for s in studies}
    assert by_description["CT CHEST LOW DOSE"].instance_count == 1
    generated = next(s for s in studies if s.instance_count == 4)
    assert generated.modalities == "CT" and generated.read is not None
    store = image_store()
    for inst in db.session.scalars(sa.select(Instance)):
        store.verify(inst.storage_key, inst.sha256)  # stored, and intact
    clinical = [s for s in studies if s.study_description != demo.TEST_PATTERN]
    assert all(s.jurisdiction and s.read and s.clinical_question for s in clinical)
    assert demo.seed_studies({"radiologist": owner}) is None  # once


def test_the_demo_command_runs_the_study_step(app):
    from qaportal.demo import STEPS

    assert any(step is demo.seed_studies for _, step in STEPS)


def test_demo_studies_say_what_their_images_show(app, monkeypatch):
    """Description, body part and modality agree with the stored images; the colour test
    pattern is labelled a test object, with no clinical question or read."""
    from pydicom import dcmread

    monkeypatch.setattr(demo, "GENERATED_SLICES", 2)
    owner = make_user(roles=("radiologist",))
    db.session.commit()
    demo.seed_studies({"radiologist": owner})
    db.session.commit()
    studies = db.session.scalars(sa.select(Study).where(Study.owner_id == owner.id)).all()
    store = image_store()
    by_description = {}
    for study in studies:
        inst = study.series[0].instances[0]
        with store.open(inst.storage_key) as fh:
            ds = dcmread(fh, stop_before_pixels=True)
        by_description.setdefault(study.study_description, []).append((study, ds))
        assert study.modalities == ds.Modality
    # The head CT with a subdural haematoma (693) is never called a chest CT.
    for description, items in by_description.items():
        for study, ds in items:
            if ds.Modality == "CT" and ds.Rows == 512:  # 693: the subdural haematoma
                assert description.startswith("CT HEAD") and study.body_part == "HEAD"
            if ds.Modality == "US":
                assert "ECHO" in description and study.body_part == "HEART"
            if ds.Modality == "OT":
                assert description == demo.TEST_PATTERN
                assert not study.clinical_question and study.read is None
    assert "US ABDOMEN LIMITED" not in by_description
    head = [s for s, _ in by_description["CT HEAD W/O CONTRAST"]]
    assert all("haematoma" in s.read.report_text for s in head)
