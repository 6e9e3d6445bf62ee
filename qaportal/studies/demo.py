"""Demo studies: real sample files from pydicom and pydicom-data, and a generated CT."""

from __future__ import annotations

import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from qaportal.demo import demo_step
from qaportal.extensions import db
from qaportal.models import Study, utcnow

# (pydicom test file, jurisdiction, clinical question, history, original report)
SAMPLES = [
    ("CT_small.dcm", "CA", "Pulmonary nodule follow-up?",
     "62-year-old former smoker; 6 mm nodule on prior CT.",
     "Stable 6 mm solid nodule in the right upper lobe. No new nodules. No adenopathy."),
    ("MR_small.dcm", "CA", "Demyelination?", "34-year-old with intermittent paraesthesia.",
     "No white matter lesions. Normal appearance of the brain parenchyma."),
    ("examples_ybr_color.dcm", "NY", "Gallbladder wall thickening?",
     "RUQ pain after meals for two weeks.",
     "Gallbladder distended without stones. Wall 2 mm. No pericholecystic fluid."),
    ("693_J2KI.dcm", "TX", "Acute intracranial haemorrhage?", "Fall from standing, on warfarin.",
     "No acute intracranial haemorrhage. Chronic small-vessel ischaemic change."),
    ("SC_rgb_jpeg_gdcm.dcm", "CA", "Colour test pattern", "Secondary capture for QA.",
     "Secondary capture; no diagnostic content."),
    ("MR_small_RLE.dcm", None, None, None, None),  # same UIDs as MR_small: a duplicate
]
GENERATED_SLICES = 60
# Descriptions for samples whose header has none.
DESCRIPTIONS = {"CT_small.dcm": "CT CHEST LOW DOSE", "MR_small.dcm": "MRI BRAIN W/O CONTRAST",
                "examples_ybr_color.dcm": "US ABDOMEN LIMITED",
                "693_J2KI.dcm": "CT HEAD W/O CONTRAST", "SC_rgb_jpeg_gdcm.dcm": "SECONDARY CAPTURE"}


def _sample_path(name: str) -> Path | None:
    from pydicom.data import get_testdata_file

    try:
        found = get_testdata_file(name)
    except (ValueError, OSError):
        return None
    return Path(found) if found else None


@demo_step(10)
def seed_studies(accounts: dict) -> str | None:
    """Import the sample studies for the first radiologist, once."""
    from qaportal.dicom import generate_ct_series
    from qaportal.studies import jobs, service

    owner = accounts["radiologist"]
    if db.session.scalar(sa.select(sa.func.count()).select_from(Study).where(
            Study.owner_id == owner.id)):
        return None
    tmp = Path(tempfile.mkdtemp(prefix="qaportal-demo-"))
    try:
        inputs = [(name, p) for name, *_ in SAMPLES if (p := _sample_path(name))]
        ct_dir = tmp / "chest-ct"
        generate_ct_series(ct_dir, slices=GENERATED_SLICES, patient=("DEMO^CHEST", "DEMO0042"),
                           series_description="CHEST AXIAL 1.0")
        inputs.append(("chest-ct", ct_dir))
        batch = jobs.new_batch(owner, "demo")
        jobs.import_files(inputs, owner.id, batch.id)
        jobs.finish_batch(batch)
        contexts = {}
        for name, juris, question, history, report in SAMPLES:
            p = _sample_path(name)
            if p is None or juris is None:
                continue
            from qaportal.dicom import read_header

            contexts[read_header(p).study_uid] = (juris, question, history, report,
                                                  DESCRIPTIONS.get(name, "SAMPLE STUDY"))
        for i, study_id in enumerate(batch.study_ids):
            study = db.session.get(Study, study_id)
            juris, question, history, report, description = contexts.get(study.study_uid, (
                "CA", "Staging CT: metastatic disease?", "Colorectal carcinoma, post resection.",
                "No evidence of metastatic disease in the chest. Small bilateral effusions.",
                "CT CHEST W/ CONTRAST",
            ))
            if not study.study_description or study.study_description == "e+1":
                study.study_description = description  # pydicom's samples mostly have none
            service.update_context(study, by=owner, jurisdiction=juris,
                                   clinical_question=question, clinical_history=history)
            service.set_original_read(study, by=owner, reader=owner, report_text=report,
                                      finalized_at=utcnow() - timedelta(days=2 + i))
        db.session.flush()
        return (f"Demo studies: {batch.stored} images in {len(batch.study_ids)} studies "
                f"for {owner.email}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
