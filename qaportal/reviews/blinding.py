"""Blinding: what a reviewer, committee member or reader may see of a case, and nothing more.

The reviewer never learns who read the case; the reader never learns who reviewed it.
Free text shown to either side is scrubbed of the other side's names as a second line of
defence (reports are often signed).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from qaportal.models import OriginalRead, ReviewAssignment, User
from qaportal.studies.presenter import StudyView, present

WITHHELD = "[name withheld]"
_TITLES = {"dr", "dr.", "prof", "prof.", "md", "phd", "mr", "mrs", "ms", "the"}


def _name_patterns(users: Iterable[User | None]) -> list[re.Pattern]:
    patterns = []
    for user in users:
        if user is None:
            continue
        if user.email:
            patterns.append(re.compile(rf"(?<![\w.+-]){re.escape(user.email)}(?![\w-])",
                                       re.IGNORECASE))
        full = user.full_name.strip()
        parts = [p.strip(".,") for p in re.split(r"\s+", full)]
        tokens = [full] + [p for p in parts if len(p) >= 3 and p.lower() not in _TITLES]
        for token in sorted(set(tokens), key=len, reverse=True):
            patterns.append(re.compile(rf"(?<!\w){re.escape(token)}(?!\w)", re.IGNORECASE))
    return patterns


def scrub(text: str | None, users: Iterable[User | None]) -> str:
    """Replace the given people's e-mail addresses, names and name parts in free text."""
    text = text or ""
    for pattern in _name_patterns(users):
        text = pattern.sub(WITHHELD, text)
    return text


@dataclass(frozen=True)
class BlindCase:
    """A read as a blinded colleague sees it: images, clinical notes, report; no reader."""

    study_id: int
    view: StudyView
    clinical_question: str
    clinical_history: str
    report_text: str
    finalized_at: object


def blind_view(read: OriginalRead, deidentified: bool,
               hide: Iterable[User | None] = ()) -> StudyView:
    """Return the study's header for a blinded colleague: its description scrubbed of the
    reader's and uploader's names (and of anyone in `hide`)."""
    people = [read.reader, read.study.owner, *hide]
    view = present(read.study, "deidentified" if deidentified else "full")
    return replace(view, study_description=scrub(view.study_description, people))


def blind_case(read: OriginalRead, deidentified: bool,
               hide: Iterable[User | None] = ()) -> BlindCase:
    """Return the read without its reader (and without any other person in `hide`)."""
    people = [read.reader, read.study.owner, *hide]
    study = read.study
    return BlindCase(
        study_id=study.id,
        view=blind_view(read, deidentified, hide),
        clinical_question=scrub(study.clinical_question, people),
        clinical_history=scrub(study.clinical_history, people),
        report_text=scrub(read.report_text, people),
        finalized_at=read.finalized_at,
    )


def for_assignment(assignment: ReviewAssignment) -> BlindCase:
    """Return what the assignment's reviewer may see."""
    return blind_case(assignment.read, assignment.deidentified)


def study_text(user: User, study, mode: str) -> Callable[[str | None], str]:
    """Return how free text about a study (notes, descriptions) is shown to the user.

    De-identified viewers get the study's patient identifiers removed; viewers whose access
    is blind (review, committee, teaching) also get the reader's and uploader's names
    removed, whether they see the images in full or de-identified.
    """
    from qaportal.permissions import is_blind_access
    from qaportal.studies.redact import patient_scrubber

    steps: list[Callable[[str | None], str]] = []
    if mode != "full":
        steps.append(patient_scrubber(study))
    if is_blind_access(user, study):
        people = [study.owner, study.read.reader if study.read else None]
        steps.append(lambda text: scrub(text, people))

    def shown(text: str | None) -> str:
        text = text or ""
        for step in steps:
            text = step(text)
        return text

    return shown


def study_view(view: StudyView, text: Callable[[str | None], str]) -> StudyView:
    """Return the study's header with its free-text description passed through `text`."""
    return replace(view, study_description=text(view.study_description))
