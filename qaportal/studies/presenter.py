"""What a page may show of a study: everything, or a de-identified view of it.

`present(study, mode)` is the header alone. `present_for(user, study)` is what every page,
JSON answer, download and document shown to a user goes through: the header as their access
allows, and the function that typed text about the study (notes, reports, comments, titles)
must pass through before it is shown to them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, timedelta

from qaportal.models import Study, User
from qaportal.studies import scrubber
from qaportal.studies.redact import patient_scrubber
from qaportal.studies.scrubber_anchors import people_anchors, site_anchors


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
    blind: bool = False

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


@dataclass(frozen=True)
class Presented:
    """A study as one user may see it: its header and how typed text about it is shown."""

    mode: str
    blind: bool
    view: StudyView
    text: Callable[[str | None], str]

    @property
    def may_keep_device_identity(self) -> bool:
        """A de-identified copy may keep station names and serials (Annex E option) only for
        viewers who are not blind: a station name often names the site."""
        return not self.blind


def present_for(user: User, study: Study, *, deidentified: bool = False, blind: bool = False,
                hide: Iterable[User | None] = ()) -> Presented:
    """Return the study as `user` may see it on any page, JSON answer or download.

    De-identified (the user's access is, or the surface asks for it): the pseudonym, no
    birth date, accession, institution or referring physician, shifted dates, and typed
    text scrubbed of every identifier the header holds. Blind (the user holds the study for
    review, committee or teaching, or the surface is blind): even with full access, no
    institution or referring physician, and typed text scrubbed of them and of the names of
    the reader, the uploader and anyone in `hide`.
    """
    from qaportal.permissions import is_blind_access, study_access_mode

    mode = "deidentified" if deidentified else (study_access_mode(user, study) or
                                                "deidentified")
    blind = blind or is_blind_access(user, study)
    steps = []
    if mode != "full":
        steps.append(patient_scrubber(study))
    elif blind:
        steps.append(scrubber.compile_scrubber(scrubber.site_patterns(study),
                                               scrubber.REMOVED, site_anchors(study)))
    if blind:
        people = [study.owner, study.read.reader if study.read else None, *hide]
        steps.append(scrubber.compile_scrubber(scrubber.people_patterns(people),
                                               scrubber.WITHHELD,
                                               people_anchors(people)))
    text = scrubber.chain(*steps)
    view = present(study, mode)
    view = replace(view, study_description=text(view.study_description), blind=blind,
                   **({"institution": "", "referring_physician": ""} if blind else {}))
    return Presented(mode=mode, blind=blind, view=view, text=text)
