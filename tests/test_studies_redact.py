"""Removing a study's known patient identifiers from free text."""

from datetime import date

from qaportal.models import Study
from qaportal.studies.redact import patient_scrubber


def _study(**kw) -> Study:
    base = {"patient_name": "O'NEIL^ANN^MARIE", "patient_id": "MRN12345",
            "accession_number": "ACC777", "institution": "St Elsewhere",
            "referring_physician": "HOUSE^GREGORY", "patient_birth_date": date(1950, 3, 9)}
    return Study(**{**base, **kw})


def test_known_identifiers_are_replaced_in_any_common_form():
    scrub = patient_scrubber(_study())
    text = ("Ann Marie O'Neil (MRN12345, acc ACC777, born 03/09/1950 / 1950-03-09) "
            "referred by Dr Gregory House from St Elsewhere.")
    out = scrub(text)
    for value in ("O'Neil", "Ann", "Marie", "MRN12345", "ACC777", "1950", "House",
                  "Gregory", "Elsewhere"):
        assert value.lower() not in out.lower(), value
    # The whole name is one match, so the patient is one "[removed]", not three.
    assert out == ("[removed] ([removed], acc [removed], born [removed] / [removed]) "
                   "referred by Dr [removed] from [removed].")


def test_only_whole_words_are_replaced():
    scrub = patient_scrubber(_study(patient_name="ANN^LEE", referring_physician=""))
    assert scrub("Annual follow-up; sleep study; Ann agreed.") == (
        "Annual follow-up; sleep study; [removed] agreed.")


def test_a_study_without_identifiers_leaves_text_alone():
    scrub = patient_scrubber(Study(patient_name="", patient_id="", accession_number="",
                                   institution="", referring_physician=""))
    assert scrub("No names here.") == "No names here." and scrub(None) == ""
