"""Blinding: what a reviewer, committee member or reader may see of a case, and nothing more.

The reviewer never learns who read the case; the reader never learns who reviewed it.
Free text shown to either side is scrubbed of the other side's names as a second line of
defence (reports are often signed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from qaportal.models import OriginalRead, ReviewAssignment, User
from qaportal.studies.presenter import StudyView, present_for
from qaportal.studies.scrubber import WITHHELD, compile_scrubber, people_patterns
from qaportal.studies.scrubber_anchors import people_anchors

__all__ = ["WITHHELD", "BlindCase", "blind_case", "blind_view", "for_assignment", "scrub",
           "study_text", "study_view"]


def scrub(text: str | None, users: Iterable[User | None]) -> str:
    """Replace the given people's e-mail addresses, names, initials and name parts in text."""
    users = list(users)
    return compile_scrubber(people_patterns(users), WITHHELD, people_anchors(users))(text)


@dataclass(frozen=True)
class BlindCase:
    """A read as a blinded colleague sees it: images, clinical notes, report; no reader."""

    study_id: int
    view: StudyView
    clinical_question: str
    clinical_history: str
    report_text: str
    finalized_at: object
    text: Callable[[str | None], str] = lambda text: text or ""


def blind_view(user: User, read: OriginalRead, deidentified: bool,
               hide: Iterable[User | None] = ()) -> StudyView:
    """Return the study's header for a blinded colleague (the presenter's, blind)."""
    return present_for(user, read.study, deidentified=deidentified, blind=True,
                       hide=hide).view


def blind_case(user: User, read: OriginalRead, deidentified: bool,
               hide: Iterable[User | None] = ()) -> BlindCase:
    """Return the read without its reader (and without any other person in `hide`), every
    field through the presenter: de-identified when asked, scrubbed of names always."""
    shown = present_for(user, read.study, deidentified=deidentified, blind=True, hide=hide)
    study = read.study
    return BlindCase(
        study_id=study.id,
        view=shown.view,
        clinical_question=shown.text(study.clinical_question),
        clinical_history=shown.text(study.clinical_history),
        report_text=shown.text(read.report_text),
        finalized_at=read.finalized_at,
        text=shown.text,
    )


def for_assignment(assignment: ReviewAssignment) -> BlindCase:
    """Return what the assignment's reviewer may see."""
    return blind_case(assignment.reviewer, assignment.read, assignment.deidentified)


def study_text(user: User, study, mode: str) -> Callable[[str | None], str]:
    """Return how free text about a study is shown to the user (the presenter's scrubber)."""
    return present_for(user, study, deidentified=mode != "full").text


def study_view(view: StudyView, text: Callable[[str | None], str]) -> StudyView:
    """Return the study's header with its description passed through `text` (older call
    sites; new code takes `present_for(user, study).view`, which also hides what blind
    viewers may not see)."""
    return replace(view, study_description=text(view.study_description))
