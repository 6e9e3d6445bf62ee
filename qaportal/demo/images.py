"""Real image sets for demo studies, and a fast way to give many demo studies their images.

Each exam names the sample file(s) it is shown with, so that description, body part,
modality and the questions asked of it agree with what a radiologist sees. A demo study
gets its own stored copy of the exam's image, rewritten with the study's UIDs and demo
patient identity: every Instance row has its own file and SHA-256 (verify-storage holds),
and the file's header agrees with the study it belongs to (downloads, de-identification).
The rewrite swaps fixed-length placeholder values in the bytes (qaportal/dicom/template.py),
so no file is parsed twice.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pydicom.data import get_testdata_file

from qaportal.dicom.template import SampleTemplate, fill, fixed_length_uid, sample_template
from qaportal.extensions import db
from qaportal.models import Instance, Series, Study


@dataclass(frozen=True)
class Exam:
    """A kind of exam as the demo shows it, and the real image it is shown with."""

    key: str
    modality: str
    description: str
    body_part: str
    subspecialty: str  # the pool a question about it goes to
    series_description: str
    files: tuple[str, ...]  # pydicom / pydicom-data sample files, first available wins
    question: str  # a clinical question a referrer would ask of this exam
    report: str  # a read that agrees with the image


EXAMS: dict[str, Exam] = {e.key: e for e in (
    # 693: one slice of a head CT with a large left subdural haematoma and midline shift.
    Exam("ct_head", "CT", "CT HEAD W/O CONTRAST", "HEAD", "neuro", "AXIAL 5 MM",
         ("693_J2KI.dcm",), "Fall on anticoagulation: intracranial haemorrhage?",
         "Acute-on-chronic left subdural haematoma with mass effect and midline shift to the "
         "right."),
    # CT_small: an axial slice of the upper thorax (vertebra, apices, great vessels).
    Exam("ct_chest", "CT", "CT CHEST W/O CONTRAST", "CHEST", "chest", "AXIAL",
         ("CT_small.dcm",), "Persistent cough in a smoker: lung lesion?",
         "No pulmonary nodule or consolidation in the imaged lung. Normal thoracic inlet."),
    Exam("mr_brain", "MR", "MRI BRAIN W/O CONTRAST", "HEAD", "neuro", "T1",
         ("MR_small.dcm",), "Recurrent headaches: structural cause?",
         "No intracranial mass, haemorrhage or hydrocephalus."),
    Exam("xr_chest", "CR", "XR CHEST PA", "CHEST", "chest", "PA", ("RG1_J2KI.dcm",),
         "Fever and cough: pneumonia?",
         "Clear lungs. Normal heart size and mediastinal contour. No pleural effusion."),
    Exam("xr_tibia", "CR", "XR TIBIA AND FIBULA", "LEG", "msk", "AP", ("RG3_J2KI.dcm",),
         "Ankle pain after a twisting injury: fracture?",
         "No fracture. Eccentric well-defined lucent lesion of the distal tibial metaphysis "
         "with a sclerotic rim: non-ossifying fibroma, no follow-up needed."),
    Exam("mr_shoulder", "MR", "MRI SHOULDER W/O CONTRAST", "SHOULDER", "msk", "CORONAL",
         ("MR2_J2KI.dcm",), "Painful arc: rotator cuff tear?",
         "Intact rotator cuff. No labral tear. No joint effusion."),
    Exam("mr_liver", "MR", "MRI ABDOMEN LIVER W/ CONTRAST", "ABDOMEN", "body", "AXIAL T1",
         ("examples_overlay.dcm",), "Indeterminate liver lesion on ultrasound: characterise.",
         "Large heterogeneous lesion in the right hepatic lobe; tissue sampling advised."),
    Exam("nm_bone", "NM", "NM BONE SCAN WHOLE BODY", "WHOLEBODY", "nuclear", "WHOLE BODY",
         ("JPEG2000.dcm",), "Prostate cancer staging: bone metastases?",
         "No scintigraphic evidence of osseous metastases."),
)}

# A relevant history for each exam kind (the clinical notes a referrer sends with it).
HISTORIES = {
    "ct_head": "Fall at home on warfarin; drowsy since.",
    "ct_chest": "Former smoker, cough for eight weeks.",
    "mr_brain": "Daily headaches for three months; normal neurological examination.",
    "xr_chest": "Fever for four days, productive cough.",
    "xr_tibia": "Inversion injury playing football; tender over the distal tibia.",
    "mr_shoulder": "Painful arc for four months despite physiotherapy.",
    "mr_liver": "Weight loss; indeterminate liver lesion on ultrasound.",
    "nm_bone": "Newly diagnosed prostate cancer, PSA 24.",
}
# Made-up demo patients; "FAMILY^GIVEN" stays within the template's 18-character placeholder.
_FAMILY = ("ABBOTT", "BRENNAN", "CASTILLO", "DUBOIS", "ERIKSEN", "FAROUK", "GALLAGHER",
           "HOLLOWAY", "IVANOVA", "JENSEN", "KOWALSKI", "LINDQVIST", "MORETTI", "NAKAMURA",
           "OKONKWO", "PATEL", "QUINTERO", "ROSSITER", "SANTOS", "THORNE", "UCHIDA", "VARGA",
           "WALLACE", "YILMAZ")
_GIVEN = ("ADA", "BEN", "CLARA", "DAVID", "ELENA", "FELIX", "GRACE", "HUGO", "IRIS", "JONAH",
          "KEIKO", "LIAM", "MAYA", "NOAH", "OLIVE", "PAUL", "RUTH", "SAMIR", "TESSA", "VIKRAM")


def patient_name(rng) -> str:
    """Return a made-up demo patient's DICOM name ("FAMILY^GIVEN") drawn with rng."""
    return f"{rng.choice(_FAMILY)}^{rng.choice(_GIVEN)}"


def demo_uid() -> str:
    """Return a UID as long as the template's placeholders."""
    return fixed_length_uid()


def sample_path(name: str) -> Path | None:
    """Return the local path of a pydicom (or pydicom-data) sample file, or None."""
    try:
        found = get_testdata_file(name, download=False)
    except (ValueError, OSError):
        return None
    return Path(found) if found else None


def available(key: str) -> bool:
    """Tell whether the exam's image is installed (pydicom-data sets may be missing)."""
    return _source(key) is not None


def _source(key: str) -> Path | None:
    """Return the first installed sample file of the exam kind."""
    return next((p for name in EXAMS[key].files if (p := sample_path(name))), None)


@cache
def _template(key: str) -> SampleTemplate:
    """Read the exam's sample once; return its bytes with placeholders where identity goes."""
    exam = EXAMS[key]
    path = _source(key)
    if path is None:
        raise LookupError(f"no sample image installed for {key}")
    return sample_template(path, modality=exam.modality, body_part=exam.body_part,
                           description=exam.description,
                           series_description=exam.series_description)


def new_study(owner_id: int, key: str, *, patient: tuple[str, str], accession: str,
              sex: str, when, **fields) -> Study:
    """Return a new (unsaved) study of the exam's kind: description, body part, modality."""
    exam = EXAMS[key]
    study = Study(study_uid=demo_uid(), owner_id=owner_id, patient_name=patient[0],
                  patient_id=patient[1], patient_sex=sex, accession_number=accession,
                  study_date=when, study_description=exam.description,
                  modalities=exam.modality, body_part=exam.body_part, **fields)
    return study


def attach_image(study: Study, key: str, store) -> str:
    """Store the exam's image as the study's one series and instance; return the storage key.

    The caller flushes, and syncs the returned keys (store.sync) before it commits.
    """
    from qaportal.dicom import new_key

    exam, t = EXAMS[key], _template(key)
    series_uid, sop_uid = demo_uid(), demo_uid()
    data = fill(t, study_uid=study.study_uid, series_uid=series_uid, sop_uid=sop_uid,
                frame_uid=demo_uid(), patient_name=study.patient_name,
                patient_id=study.patient_id, accession=study.accession_number,
                date=study.study_date.strftime("%Y%m%d") if study.study_date else None)
    storage_key = new_key()
    stored = store.put(storage_key, io.BytesIO(data), sync=False)
    series = Series(series_uid=series_uid, modality=exam.modality, series_number=1,
                    series_description=exam.series_description, body_part=exam.body_part,
                    instance_count=1, frame_count=t.frames)
    series.instances.append(Instance(
        sop_uid=sop_uid, sop_class_uid=t.sop_class_uid, instance_number=1, rows=t.rows,
        columns=t.columns, frames=t.frames, transfer_syntax_uid=t.transfer_syntax_uid,
        photometric_interpretation=t.photometric, window_center=t.window_center,
        window_width=t.window_width, storage_key=storage_key, sha256=stored.sha256,
        size_bytes=stored.size))
    study.series.append(series)
    study.series_count, study.instance_count = len(study.series), 1
    study.size_bytes = stored.size
    return storage_key


def add_study(owner_id: int, key: str, store, **kwargs) -> tuple[Study, str]:
    """Create a study of the exam's kind with its image; return it and the storage key."""
    study = new_study(owner_id, key, **kwargs)
    db.session.add(study)
    return study, attach_image(study, key, store)
