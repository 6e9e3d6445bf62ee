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
    assert patient_scrubber(study)("KEPT ONCE, 7770001.") == "[removed], [removed]."
    before = scrubber._compiled.cache_info()
    assert patient_scrubber(study)("KEPT ONCE, 7770001.") == "[removed], [removed]."
    after = scrubber._compiled.cache_info()
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)


def test_a_text_that_names_no_one_is_returned_without_compiling_a_scrubber():
    # Most descriptions and notes on a list page hold none of the row's identifiers: the
    # scrubber's patterns are compiled only for a text that may match (Anchors).
    from qaportal.studies import scrubber

    study = _study(patient_name="NEVER^COMPILED^Q", patient_id="MRN-5550009")
    before = scrubber._compiled.cache_info()
    for text in ("CT CHEST WITH CONTRAST", "MR BRAIN WO", "", None, "Follow-up in 6 months."):
        assert patient_scrubber(study)(text) == (text or "")
    assert scrubber._compiled.cache_info().misses == before.misses
    assert patient_scrubber(study)("Compiled? Never.") == "[removed]? [removed]."
    assert scrubber._compiled.cache_info().misses == before.misses + 1


def _fuzz_texts(rng, values: list[str], n: int) -> list[str]:
    """Texts made of pieces of the values (whole, cut, re-cased, re-punctuated), digits,
    separators and ordinary words: near misses and hits of every pattern kind."""
    import random as _random

    assert isinstance(rng, _random.Random)
    words = ["CT", "CHEST", "the", "AR", "mm", "Dr", "of", "March", "Mar", "5th", "st", "Per",
             "J.", "A.", "R.", "no", "change", "\u00e9cho", "Stra\u00dfe", "\u212a"]
    seps = [" ", "", "-", "/", ".", ", ", "^", "'s ", "_", ":", "  "]
    texts = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 6)):
            kind = rng.random()
            if kind < 0.5:
                v = rng.choice(values)
                if rng.random() < 0.5 and len(v) > 2:
                    i = rng.randrange(len(v) - 1)
                    v = v[i:rng.randint(i + 1, len(v))]
                v = rng.choice([v, v.lower(), v.upper(), v.title()])
                if rng.random() < 0.3:
                    v = rng.choice(seps).join(v)
            elif kind < 0.75:
                v = str(rng.choice([rng.randint(0, 99), rng.randint(1900, 2030),
                                    rng.randint(0, 99999999)]))
            else:
                v = rng.choice(words)
            parts.append(v)
            parts.append(rng.choice(seps))
        texts.append("".join(parts))
    return texts


def test_skipping_a_text_never_changes_what_the_scrubber_returns():
    """The anchors are a necessary condition: with them the scrubbed text is exactly the
    one the full patterns give, on thousands of near misses and hits."""
    import random

    from qaportal.studies import scrubber
    from qaportal.studies.scrubber_anchors import patient_anchors, people_anchors, site_anchors

    studies = [_study(),
               _study(patient_name="O'BRIEN-SMYTHE^MARY ANN", patient_id="77-0042",
                      accession_number="XZ0001999", institution="St. Mary's Clinic",
                      referring_physician="NG^WEI", patient_birth_date=date(2001, 12, 31)),
               _study(patient_name="M\u00dcLLER^J\u00dcRGEN", institution="H\u00f4pital Nord")]
    people = [RADLEY, User(full_name="Jonas Kettleby", email="jk@example.test"),
              User(full_name="Li Wu", email="li.wu@example.test")]
    rng = random.Random(13)
    checked = skipped = 0
    for study in studies:
        values = [study.patient_name.replace("^", " "), study.patient_id, study.accession_number,
                  study.institution, study.referring_physician.replace("^", " "),
                  study.patient_birth_date.strftime("%d/%m/%Y"),
                  study.patient_birth_date.strftime("%Y%m%d"),
                  study.patient_birth_date.strftime("%B %d, %Y"),
                  study.patient_birth_date.strftime("%d.%m.%y"),
                  study.patient_birth_date.strftime("%m-%d-%y"),
                  *(u.full_name for u in people), *(u.email for u in people)]
        for patterns, anchors, repl in (
                (scrubber.patient_patterns(study), patient_anchors(study), "[r]"),
                (scrubber.site_patterns(study), site_anchors(study), "[s]"),
                (scrubber.people_patterns(people), people_anchors(people), "[w]")):
            full = scrubber.compile_scrubber(patterns, repl)
            lazy = scrubber.compile_scrubber(patterns, repl, anchors)
            for text in _fuzz_texts(rng, values, 1500):
                assert lazy(text) == full(text), (text, patterns)
                checked += 1
                skipped += not anchors.may_match(text)
    assert checked == 3 * 3 * 1500
    assert 0.05 * checked < skipped < 0.95 * checked  # the fuzz holds both kinds of text


def test_a_text_or_value_beyond_ascii_is_always_scrubbed():
    from qaportal.studies import scrubber_anchors

    study = _study(patient_name="M\u00dcLLER^J\u00dcRGEN")
    assert not scrubber_anchors.patient_anchors(study).exact
    assert scrubber_anchors.patient_anchors(study).may_match("CT CHEST")
    assert scrubber_anchors.patient_anchors(_study()).may_match("CT CH\u00c9ST")
    assert not scrubber_anchors.patient_anchors(_study()).may_match("CT CHEST")
