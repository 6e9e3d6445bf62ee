"""What a page may show of a study: everything, or a de-identified view of it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from qaportal.models import Study


@dataclass(frozen=True)
class StudyView:
    """The study's header fields as the current user may see them."""

    id: int
    deidentified: bool
    patient_name: str
    patient_id: str
    patient_sex: str
    patient_birth_date: date | None
    accession_number: str
    study_date: date | None
    study_description: str
    modalities: str
    body_part: str
    institution: str
    referring_physician: str
    jurisdiction: str | None
    series_count: int
    instance_count: int
    size_bytes: int
    burned_in_suspected: bool

    @property
    def label(self) -> str:
        """A short name for the study: description, modality and date."""
        parts = [self.study_description or "Study", self.modalities,
                 self.study_date.isoformat() if self.study_date else ""]
        return " · ".join(p for p in parts if p)


def present(study: Study, mode: str) -> StudyView:
    """Return the study as a user with the given access mode may see it."""
    deid = mode != "full"
    shift = timedelta(days=study.deid_date_shift_days)
    return StudyView(
        id=study.id,
        deidentified=deid,
        patient_name=study.pseudonym if deid else study.patient_name,
        patient_id=study.pseudonym if deid else study.patient_id,
        patient_sex=study.patient_sex,
        patient_birth_date=None if deid else study.patient_birth_date,
        accession_number="" if deid else study.accession_number,
        study_date=(study.study_date + shift if deid and study.study_date else study.study_date),
        study_description=study.study_description,
        modalities=study.modalities,
        body_part=study.body_part,
        institution="" if deid else study.institution,
        referring_physician="" if deid else study.referring_physician,
        jurisdiction=study.jurisdiction,
        series_count=study.series_count,
        instance_count=study.instance_count,
        size_bytes=study.size_bytes,
        burned_in_suspected=study.burned_in_suspected,
    )
