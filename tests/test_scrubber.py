"""The scrubber: a study's identifiers and people's names in the ways people type them."""

from __future__ import annotations

from datetime import date

import pytest

from qaportal.models import Study, User
from qaportal.reviews.blinding import scrub
from qaportal.studies.redact import patient_scrubber

RADLEY = User(full_name="Alan Radley", email="aradley@example.test")


@pytest.mark.parametrize("typed", [
    "Alan Radley", "Radley", "RADLEY", "radley", "Dr Radley", "Dr. Radley", "Prof Radley",
    "Radley's", "Radley\u2019s", "Dr Radleys", "ARadley", "aradley", "A.Radley", "A. Radley",
    "Radley, Alan", "RADLEY^ALAN", "aradley@example.test", "A.R.", "A. R.",
])
def test_reader_name_variants_are_withheld(typed):
    out = scrub(f"Discussed with {typed} today.", [RADLEY])
    assert "radley" not in out.lower() and "a.r" not in out.lower().replace(" ", ""), out
    assert out.startswith("Discussed with ") and out.endswith(" today.")
    assert "[name withheld]" in out


def test_initials_alone_are_withheld_only_when_unambiguous():
    jk = User(full_name="Jonas Kettleby", email="jk@example.test")
    assert scrub("Per JK, no change.", [jk]) == "Per [name withheld], no change."
    # "AR" is aortic regurgitation as often as it is Alan Radley: left alone undotted...
    assert scrub("Mild AR noted.", [RADLEY]) == "Mild AR noted."
    # ...and lower-case letters or letters inside a word are never taken for initials.
    assert scrub("the jk flag; DJK", [jk]) == "the jk flag; DJK"


def test_other_words_are_left_alone():
    assert scrub("Radleyfield Road; a bradley sign", [RADLEY]) == (
        "Radleyfield Road; a bradley sign")


def _study(**kw) -> Study:
    base = {"patient_name": "DOE^JANE^Q", "patient_id": "MRN-0012345",
            "accession_number": "A7788991", "institution": "Harbourview Medical Center",
            "referring_physician": "SMITH^JOHN", "patient_birth_date": date(1961, 3, 5)}
    return Study(**{**base, **kw})


@pytest.mark.parametrize("typed", [
    "Jane Doe", "DOE, JANE", "doe^jane", "Ms Doe's", "JDoe", "J. Doe",
    "MRN-0012345", "mrn 0012345", "MRN0012345", "0012345", "12345", "00-123-45",
    "A7788991", "a 778 8991", "7788991",
    "19610305", "1961-03-05", "1961/03/05", "05/03/1961", "03/05/1961", "5/3/1961",
    "05.03.1961", "5 Mar 1961", "5th March 1961", "March 5, 1961", "Mar 5 1961",
    "05-Mar-1961", "05/03/61",
    "Harbourview Medical Center", "harbourview", "Dr Smith", "John Smith", "SMITH^JOHN",
])
def test_patient_identifiers_are_removed_in_any_common_format(typed):
    out = patient_scrubber(_study())(f"Note: {typed}.")
    # A title stays in front of the removed name ("Dr [removed]"), a possessive "'s" after it.
    assert out in ("Note: [removed].", "Note: Ms [removed]'s.", "Note: Dr [removed]."), out


def test_a_short_name_is_not_read_into_a_longer_word():
    out = patient_scrubber(_study())("Does Doe's scan show it?")
    assert out == "Does [removed]'s scan show it?"


def test_generic_words_of_the_institution_stay():
    out = patient_scrubber(_study())("Seen at another medical center; CT 12 mm.")
    assert out == "Seen at another medical center; CT 12 mm."


def test_a_scrubber_is_compiled_once_per_process():
    # List pages build one or two scrubbers a row; compiling one costs milliseconds.
    from qaportal.studies import scrubber

    study = _study(patient_name="KEPT^ONCE^Z", patient_id="MRN-7770001")
    patient_scrubber(study)
    before = scrubber._compiled.cache_info()
    assert patient_scrubber(study)("KEPT ONCE, 7770001.") == "[removed], [removed]."
    after = scrubber._compiled.cache_info()
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)
