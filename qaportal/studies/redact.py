"""Remove a study's known patient identifiers from free text shown de-identified.

Free text (a clinical question, history, a preliminary read, a message) is typed by people
and may name the patient. When a page or a document shows a study de-identified, the
identifiers the study's header holds are replaced in such text. This catches exact known
values, not misspellings: the forms still ask people to keep identifiers out.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from qaportal.models import Study

REMOVED = "[removed]"


def _values(study: Study) -> set[str]:
    values: set[str] = set()
    for raw in (study.patient_name, study.referring_physician):
        raw = (raw or "").strip()
        if not raw:
            continue
        parts = [p for p in re.split(r"[\^,=\s]+", raw) if len(p) >= 3]
        values.update(parts)
        values.update({" ".join(parts), " ".join(reversed(parts)), ", ".join(parts)})
    values.update(v.strip() for v in (study.patient_id, study.accession_number,
                                      study.institution) if v and len(v.strip()) >= 3)
    if study.patient_birth_date:
        d = study.patient_birth_date
        values.update({d.isoformat(), d.strftime("%Y%m%d"), d.strftime("%m/%d/%Y"),
                       d.strftime("%d/%m/%Y"), d.strftime("%d.%m.%Y")})
    values.discard("")
    return values


def patient_scrubber(study: Study) -> Callable[[str | None], str]:
    """Return a function replacing the study's patient identifiers in text by [removed]."""
    values = _values(study)
    if not values:
        return lambda text: text or ""
    alternatives = "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
    # Whole words only: a surname inside another word ("Ann" in "annual") is left alone.
    pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
    return lambda text: pattern.sub(REMOVED, text or "")
