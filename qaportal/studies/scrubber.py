"""Scrub identities out of typed text: a study's patient identifiers and people's names.

People type identities into free text (a clinical question naming the patient, a report
signed "Dr Radley's read", an MRN written with dashes). A blind or de-identified page
passes every such text through a scrubber built from what the portal knows: the study's
header (patient name, ID, accession, birth date, institution, referring physician) and the
people to hide (reader, uploader...). Matching is case-insensitive and tolerant of the
common ways each value is written; it removes known values only, never guesses others.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from datetime import date
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:  # scrubber_anchors imports this module's name_parts and constants
    from qaportal.studies.scrubber_anchors import Anchors

# Compiled scrubbers kept per process (about 15 KB each): a department's open worklists,
# feedback and study list pages, each study or set of people compiled once. re's own
# cache (512 patterns, shared with every other regex) was churned by the list pages.
SCRUBBER_CACHE = 2048
# The regex alternatives of one value (a name, an ID, a date, an institution), kept per
# process too: building them costs about 0.15 ms a name, and a list page asks for the same
# people and patients on every row and every request.
PATTERN_CACHE = 8192
REMOVED = "[removed]"
WITHHELD = "[name withheld]"

Scrub = Callable[[str | None], str]
T = TypeVar("T")

# Words kept in a name that are not the person (titles, suffixes).
TITLES = frozenset({"dr", "prof", "professor", "md", "phd", "mr", "mrs", "ms", "miss", "the",
                    "sir", "dame", "rev", "jr", "sr", "ii", "iii", "frcr", "frcpc", "do"})
# Generic words of institution names: scrubbed only as part of the whole name.
GENERIC = frozenset({"hospital", "hospitals", "medical", "center", "centre", "clinic",
                     "clinics", "university", "general", "health", "healthcare", "imaging",
                     "radiology", "regional", "saint", "memorial", "community", "children",
                     "childrens", "county", "city", "district", "royal", "national", "trust",
                     "institute", "services", "care", "diagnostic", "diagnostics", "group",
                     "and", "of", "the", "for", "st", "mount", "mt", "north", "south", "east",
                     "west", "central", "valley", "foundation", "infirmary"})
# Upper-case letter runs that are ordinary radiology abbreviations, never taken as initials.
ABBREVIATIONS = frozenset({
    "AP", "PA", "AR", "AS", "MR", "CT", "US", "XR", "DR", "CR", "MS", "MI", "PE", "IV", "GI",
    "GU", "ED", "ER", "OR", "ICU", "PET", "MRI", "CTA", "MRA", "LL", "LLL", "RLL", "RUL",
    "LUL", "RML", "RA", "LA", "RV", "LV", "CXR", "KUB", "ENT", "OK", "NA", "NO", "IN", "ON",
    "AT", "TO", "IS", "IT", "AN", "AM", "PM", "BE", "BY", "IF", "OF", "UP", "DO", "GO", "SO",
    "WE", "HE", "ME", "MY", "CA", "TB", "DVT", "CHF", "COPD", "CVA", "TIA", "BP", "HR", "SOB",
    "LOC", "MVA", "MVC", "RTA", "FH", "PMH", "HX", "DX", "RX", "TX", "SX", "FX", "PT", "PTA",
    "VS", "QA", "MD", "PHD", "RN", "NP", "ID", "DOB", "MRN", "ACC", "CC", "ML", "MM", "CM",
    "HU", "SUV", "T1", "T2", "DWI", "ADC", "FLAIR", "STIR", "NAD", "WNL", "LMP", "HCG",
})
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")

_WORD_START = r"(?<![^\W_])"  # not preceded by a letter or digit
_WORD_END = r"(?![^\W_])"
_ALNUM_START = r"(?<![A-Za-z0-9])"
_ALNUM_END = r"(?![A-Za-z0-9])"
# A plural or apostrophe-less possessive ("Radleys", "Radleys'") is part of the name; the
# "'s" of "Radley's" is left after the replacement ("[name withheld]'s"), which reads well.
_POSSESSIVE = r"(?:s['\u2019]?)?"


def _per_value(builder: Callable[[T], list[str]]) -> Callable[[T], list[str]]:
    """Keep a pattern builder's answer per value (the builders are pure); each call still
    returns a new list the caller may extend."""
    kept = functools.lru_cache(maxsize=PATTERN_CACHE)(lambda value: tuple(builder(value)))

    @functools.wraps(builder)
    def cached(value: T) -> list[str]:
        return list(kept(value))

    cached.cache_info = kept.cache_info
    return cached


def _plural(word: str) -> str:
    """The possessive "s" after a name part; not after short ones ("Doe" is not "Does")."""
    return _POSSESSIVE if len(word) >= 4 else ""


_SEP = r"[\s\-./_:]*"


def name_parts(raw: str | None) -> tuple[list[str], list[str]]:
    """Split a DICOM person name ("Family^Given^Middle") or a typed name ("Given Family",
    "Family, Given") into (family names, given names), titles left out."""
    raw = (raw or "").strip()
    if not raw:
        return [], []
    if "^" in raw or "=" in raw:
        groups = raw.split("=")[0].split("^")
        family, given = groups[0], " ".join(groups[1:3])
    elif "," in raw:
        family, given = raw.split(",", 1)
    else:
        words = raw.split()
        family, given = (words[-1], " ".join(words[:-1])) if len(words) > 1 else (raw, "")

    def words(text: str) -> list[str]:
        return [w for w in (w.strip(".,;:()") for w in re.split(r"[\s,]+", text))
                if w and w.lower().strip(".") not in TITLES]

    return words(family), words(given)


@_per_value
def name_patterns(raw: str | None) -> list[str]:
    """Return regex alternatives matching a person's name as people type it.

    The whole name in either order, each family and given name in any case, with a
    possessive or a trailing s ("Radleys"), the surname fused to initials ("ARadley",
    "A.J. Radley"), and the initials alone ("A.R.", "AJR") when written in capitals and not
    an ordinary abbreviation.
    """
    family, given = name_parts(raw)
    if not family and not given:
        return []
    patterns: list[str] = []
    if family and given:
        fam = r"[\s\-]+".join(re.escape(w) for w in family)
        giv = r"[\s.]+".join(re.escape(w) for w in given)
        giv = f"(?:{giv}\\.?|{re.escape(given[0])})" if len(given) > 1 else giv
        patterns += [rf"{_WORD_START}{giv}\s+{fam}{_POSSESSIVE}{_WORD_END}",
                     rf"{_WORD_START}{fam}\s*[,^]\s*{giv}{_WORD_END}",
                     rf"{_WORD_START}{fam}\s+{giv}{_WORD_END}"]
    initials = [g[0] for g in given if g[0].isalpha()]
    surname = next((f for f in family if len(f) >= 2), "")
    if initials and surname:
        letters = "".join(sorted(set(initials + [i.lower() for i in initials])))
        patterns.append(rf"{_WORD_START}(?:[{re.escape(letters)}]\.?\s?){{1,3}}"
                        rf"{re.escape(surname)}{_POSSESSIVE}{_WORD_END}")
    split = [p for w in family + given for p in re.split(r"[-'\u2019]", w) if p != w]
    tokens = [f for f in family if len(f) >= 2] + [g for g in given if len(g) >= 3]
    tokens += [p for p in split if len(p) >= 3]
    for token in sorted(set(tokens), key=len, reverse=True):
        patterns.append(rf"{_WORD_START}{re.escape(token)}{_plural(token)}{_WORD_END}")
    if initials and surname and surname[0].isalpha():
        run = "".join(initials[:2]) + surname[0]
        short = initials[0] + surname[0]
        for letters in {run.upper(), short.upper()}:
            dotted = r"\.\s?".join(re.escape(c) for c in letters) + r"\."
            patterns.append(f"(?-i:{_ALNUM_START}{dotted})")
            if letters not in ABBREVIATIONS:
                patterns.append(f"(?-i:{_ALNUM_START}{re.escape(letters)}{_ALNUM_END})")
    return patterns


@_per_value
def identifier_patterns(value: str | None) -> list[str]:
    """Return regex alternatives matching an ID (MRN, accession) however it is punctuated:
    "MRN-0012345" also as "mrn 0012345", "0012345", "12345", "00-123-45"."""
    chars = re.sub(r"[^A-Za-z0-9]", "", value or "")
    if len(chars) < 3:
        return []
    patterns = [_ALNUM_START + _SEP.join(re.escape(c) for c in chars) + _ALNUM_END]
    digits = re.search(r"\d+$", chars)
    core = digits.group(0).lstrip("0") if digits else ""
    if len(core) >= 4 and core != chars:
        patterns.append(_ALNUM_START + rf"(?:0{_SEP})*" + _SEP.join(re.escape(c) for c in core)
                        + _ALNUM_END)
    return patterns


@_per_value
def date_patterns(d: date | None) -> list[str]:
    """Return regex alternatives matching a date in common formats: 19610305, 1961-03-05,
    05/03/1961, 3/5/1961, 05.03.61, 5 Mar 1961, 5th March 1961, March 5, 1961, 05-Mar-1961."""
    if d is None:
        return []
    y, yy = str(d.year), f"{d.year % 100:02d}"
    day, month = rf"0?{d.day}", rf"0?{d.month}"
    name = MONTHS[d.month - 1]
    mon = rf"(?:{name}|{name[:3]}{'|Sept' if d.month == 9 else ''})\.?"
    dsuf = r"(?:st|nd|rd|th)?"
    sep = r"\s*[-/.]\s*"
    years = rf"(?:{y}|{yy})"
    return [
        rf"{_ALNUM_START}{y}{d.month:02d}{d.day:02d}{_ALNUM_END}",
        rf"{_ALNUM_START}{y}{sep}{month}{sep}{day}{_ALNUM_END}",
        rf"{_ALNUM_START}{day}{sep}{month}{sep}{years}{_ALNUM_END}",
        rf"{_ALNUM_START}{month}{sep}{day}{sep}{years}{_ALNUM_END}",
        rf"{_ALNUM_START}{day}{dsuf}[\s\-]*(?:of\s+)?{mon}[\s,\-]*{y}{_ALNUM_END}",
        rf"{_WORD_START}{mon}\s*{day}{dsuf},?\s*{y}{_ALNUM_END}",
    ]


@_per_value
def phrase_patterns(value: str | None) -> list[str]:
    """Return alternatives for a name like an institution's: the whole phrase (any spacing
    and case) and its distinctive words (not "Hospital", "General"...)."""
    words = [w for w in re.split(r"[^\w'&]+", value or "") if w]
    if not words:
        return []
    patterns = [_WORD_START + r"[\s,.\-]+".join(re.escape(w) for w in words) + _WORD_END]
    for word in words:
        if len(word) >= 4 and word.lower().strip("'s") not in GENERIC:
            patterns.append(rf"{_WORD_START}{re.escape(word)}{_plural(word)}{_WORD_END}")
    return patterns


@_per_value
def email_patterns(email: str | None) -> list[str]:
    """Return the alternative matching an e-mail address."""
    email = (email or "").strip()
    return [rf"(?<![\w.+-]){re.escape(email)}(?![\w-])"] if email else []


def compile_scrubber(patterns: Iterable[str], replacement: str,
                     anchors: Anchors | None = None) -> Scrub:
    """Return a function replacing every match of any pattern by replacement.

    Alternatives are tried in the order given (each *_patterns lists the longest forms of a
    value first: the whole name before its parts), duplicates dropped. With `anchors` (what
    a text must hold for any pattern to match), the patterns are compiled when the first
    text that may match comes, and a text that cannot is returned as it is.
    """
    key = tuple(patterns)
    if not key:
        return lambda text: text or ""
    if anchors is None:
        regex = _compiled(key)
        return lambda text: regex.sub(replacement, text or "")

    def scrub(text: str | None) -> str:
        if not text or not anchors.may_match(text):
            return text or ""
        return _compiled(key).sub(replacement, text)

    return scrub


@functools.lru_cache(maxsize=SCRUBBER_CACHE)
def _compiled(patterns: tuple[str, ...]) -> re.Pattern | None:
    """The compiled scrubber of these alternatives (None for none), kept for the next page
    that shows the same study or people (compiling one costs 3-7 ms; a list page builds one
    or two a row). Keyed by the alternatives themselves: the cached builders hand back the
    same strings, whose hashes Python keeps."""
    unique = list(dict.fromkeys(patterns))
    if not unique:
        return None
    return re.compile("|".join(f"(?:{p})" for p in unique), re.IGNORECASE)


def people_patterns(users: Iterable) -> list[str]:
    """Return the alternatives matching each user's full name and e-mail address."""
    patterns: list[str] = []
    for user in users:
        if user is None:
            continue
        patterns += email_patterns(user.email) + name_patterns(user.full_name)
    return patterns


def patient_patterns(study) -> list[str]:
    """Return the alternatives matching the study's patient identifiers and the people and
    places its header names (institution, referring physician)."""
    patterns = name_patterns(study.patient_name) + name_patterns(study.referring_physician)
    patterns += identifier_patterns(study.patient_id)
    patterns += identifier_patterns(study.accession_number)
    patterns += date_patterns(study.patient_birth_date)
    patterns += phrase_patterns(study.institution)
    return patterns


def site_patterns(study) -> list[str]:
    """Return the alternatives matching the study's institution and referring physician:
    hidden from blind viewers even when they see the patient."""
    return phrase_patterns(study.institution) + name_patterns(study.referring_physician)


def chain(*steps: Scrub) -> Scrub:
    """Return a scrubber applying each step in turn."""
    def run(text: str | None) -> str:
        text = text or ""
        for step in steps:
            text = step(text)
        return text
    return run
