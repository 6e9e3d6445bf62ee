"""Demo studies: real sample files from pydicom and pydicom-data, and a generated CT."""

from __future__ import annotations

import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from qaportal.demo.steps import demo_step
from qaportal.extensions import db
from qaportal.models import Study, utcnow

# (pydicom test file, jurisdiction, clinical question, history, original report,
#  description, body part): what each image really shows, read as a radiologist would.
TEST_PATTERN = "TEST PATTERN (NOT A PATIENT)"
SAMPLES = [
    ("CT_small.dcm", "CA", "Pulmonary nodule follow-up?",
     "62-year-old former smoker; 6 mm nodule on prior CT.",
     "Stable 6 mm solid nodule in the right upper lobe. No new nodules. No adenopathy.",
     "CT CHEST LOW DOSE", "CHEST"),
    ("MR_small.dcm", "CA", "Demyelination?", "34-year-old with intermittent paraesthesia.",
     "No white matter lesions. Normal appearance of the brain parenchyma.",
     "MRI BRAIN W/O CONTRAST", "HEAD"),
    # An apical four-chamber echocardiogram (cine), not an abdominal ultrasound.
    ("examples_ybr_color.dcm", "NY", "Left ventricular function? Pericardial effusion?",
     "Breathlessness on exertion for a month.",
     "Normal left ventricular size and systolic function. No pericardial effusion.",
     "US ECHOCARDIOGRAM TRANSTHORACIC", "HEART"),
    # 693: a head CT with a large left subdural haematoma (the same slice as the generated
    # series below): this is its follow-up.
    ("693_J2KI.dcm", "TX", "Known left subdural haematoma: interval change?",
     "Fall on warfarin last week; managed conservatively.",
     "Left subdural haematoma of mixed density with mass effect and midline shift to the "
     "right; no new haemorrhage elsewhere.", "CT HEAD W/O CONTRAST", "HEAD"),
    # Colour bars: a test object for checking the viewer, never a clinical case.
    ("SC_rgb_jpeg_gdcm.dcm", None, "", "", "", TEST_PATTERN, ""),
    ("MR_small_RLE.dcm", None, None, None, None, None, None),  # MR_small's UIDs: a duplicate
]
GENERATED_SLICES = 60
# The generated series: a head CT from 693_UNCR (pydicom-data), else a chest CT from CT_small.
GENERATED = {
    "693_UNCR.dcm": ("CA", "Found confused after a fall, on warfarin: acute intracranial "
                     "haemorrhage?", "78-year-old on warfarin for atrial fibrillation.",
                     "Acute-on-chronic left subdural haematoma with mass effect and midline "
                     "shift to the right. Urgent neurosurgical opinion advised.",
                     "CT HEAD W/O CONTRAST", "HEAD", "HEAD AXIAL"),
    "CT_small.dcm": ("CA", "Staging CT: metastatic disease?",
                     "Colorectal carcinoma, post resection.",
                     "No evidence of metastatic disease in the imaged chest.",
                     "CT CHEST W/ CONTRAST", "CHEST", "CHEST AXIAL"),
}


def _sample_path(name: str) -> Path | None:
    from qaportal.demo.images import sample_path

    return sample_path(name)  # never downloads: a missing pydicom-data file is skipped


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
        from qaportal.dicom import read_header
        from qaportal.dicom.generate import base_slice_path

        inputs = [(name, p) for name, *_ in SAMPLES if (p := _sample_path(name))]
        base = base_slice_path()
        generated = GENERATED.get(base.name, GENERATED["CT_small.dcm"])
        ct_dir = tmp / "generated-ct"
        paths = generate_ct_series(ct_dir, slices=GENERATED_SLICES, base=base,
                                   patient=("DEMO^SERIES", "DEMO0042"),
                                   series_description=generated[-1])
        inputs.append(("generated-ct", ct_dir))
        batch = jobs.new_batch(owner, "demo")
        jobs.import_files(inputs, owner.id, batch.id)
        jobs.finish_batch(batch)
        contexts = {read_header(paths[0]).study_uid: generated[:-1]}
        for name, *context in SAMPLES:
            p = _sample_path(name)
            if p is not None and context[-1] is not None:
                contexts[read_header(p).study_uid] = tuple(context)
        for i, study_id in enumerate(batch.study_ids):
            study = db.session.get(Study, study_id)
            juris, question, history, report, description, body = contexts[study.study_uid]
            study.study_description = description  # pydicom's samples mostly have none
            study.body_part = body
            if description == TEST_PATTERN:
                continue  # a test object: no clinical context, no read, never a request
            service.update_context(study, by=owner, jurisdiction=juris,
                                   clinical_question=question, clinical_history=history)
            service.set_original_read(study, by=owner, reader=owner, report_text=report,
                                      finalized_at=utcnow() - timedelta(days=2 + i))
        db.session.flush()
        return (f"Demo studies: {batch.stored} images in {len(batch.study_ids)} studies "
                f"for {owner.email}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
