"""Remove a study's known patient identifiers from free text shown de-identified.

Free text (a clinical question, history, a preliminary read, a message) is typed by people
and may name the patient. When a page or a document shows a study de-identified, the
identifiers the study's header holds are replaced in such text, in the common ways they are
written (qaportal/studies/scrubber.py). This catches known values, not misspellings: the
forms still ask people to keep identifiers out.
"""

from __future__ import annotations

from collections.abc import Callable

from qaportal.models import Study
from qaportal.studies.scrubber import REMOVED, compile_scrubber, patient_patterns
from qaportal.studies.scrubber_anchors import patient_anchors

__all__ = ["REMOVED", "patient_scrubber"]


def patient_scrubber(study: Study) -> Callable[[str | None], str]:
    """Return a function replacing the study's patient identifiers in text by [removed]."""
    return compile_scrubber(patient_patterns(study), REMOVED, patient_anchors(study))
