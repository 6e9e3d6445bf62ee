"""Anchors: what a text must contain for a scrubber's patterns to match in it.

The Anchors class, and for each pattern builder of scrubber.py (name_patterns,
identifier_patterns, date_patterns, phrase_patterns, email_patterns and the people_,
patient_ and site_ collections) its *_anchors counterpart, which says which words or
characters every one of the builder's alternatives holds. compile_scrubber compiles a
scrubber only for a text whose anchors may match, and returns any other text as it is;
each *_anchors function must stay in step with its *_patterns builder.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date

from qaportal.studies.scrubber import ABBREVIATIONS, PATTERN_CACHE, T, name_parts


@dataclass(frozen=True)
class Anchors:
    """What a text must contain for any of some values' patterns to match in it.

    A scrubber is compiled only for a text that passes (compiling one costs 2-3 ms, most
    of a list page's row, and most descriptions and notes name no one). `groups`: the text
    may match when every needle of some group is in it: ("ci", w) a word in any case, ("cs",
    w) as written, ("alnum", w) in the text's letters and digits with everything else left
    out (an ID typed with any punctuation). Built only from ASCII values and applied only
    to ASCII text, where str.lower() is exactly the regex's case-insensitive matching;
    anything else (`exact` False, or a non-ASCII text) is always scrubbed.
    """

    groups: tuple[tuple[tuple[str, str], ...], ...] = ()
    exact: bool = True

    def __add__(self, other: Anchors) -> Anchors:
        return Anchors(self.groups + other.groups, self.exact and other.exact)

    def may_match(self, text: str) -> bool:
        if not self.exact or not text.isascii():
            return True
        lower = text.lower()
        alnum = None
        for group in self.groups:
            for kind, needle in group:
                if kind == "alnum":
                    if alnum is None:
                        alnum = _NOT_ALNUM.sub("", lower)
                    found = needle in alnum
                else:
                    found = needle in (lower if kind == "ci" else text)
                if not found:
                    break
            else:
                return True
        return False


NO_ANCHORS = Anchors()
_NOT_ALNUM = re.compile(r"[^a-z0-9]")


def _anchors(groups: Iterable[Iterable[tuple[str, str]]], values: Iterable[str]) -> Anchors:
    """Anchors of these groups; not exact when a value is not ASCII."""
    return Anchors(tuple(tuple(g) for g in groups), all(v.isascii() for v in values))


def _per_anchor(builder: Callable[[T], Anchors]) -> Callable[[T], Anchors]:
    return functools.lru_cache(maxsize=PATTERN_CACHE)(builder)


# What each pattern builder's every alternative contains (Anchors): keep them in step.

@_per_anchor
def name_anchors(raw: str | None) -> Anchors:
    """Every alternative of name_patterns holds a family name, a given name, a part of one,
    or (as written) the initials in capitals, run together or each with its dot."""
    family, given = name_parts(raw)
    if not family and not given:
        return NO_ANCHORS
    split = [p for w in family + given for p in re.split(r"[-'\u2019]", w) if p != w]
    words = family + given + split
    groups = [[("ci", w.lower())] for w in words]
    initials = [g[0] for g in given if g[0].isalpha()]
    surname = next((f for f in family if len(f) >= 2), "")
    if initials and surname and surname[0].isalpha():  # the initials, in capitals
        run = "".join(initials[:2]) + surname[0]
        short = initials[0] + surname[0]
        for letters in {run.upper(), short.upper()}:
            groups.append([("cs", f"{c}.") for c in letters])  # each letter and its dot
            if letters not in ABBREVIATIONS:
                groups.append([("cs", letters)])
    return _anchors(groups, [*words, *initials])


@_per_anchor
def identifier_anchors(value: str | None) -> Anchors:
    """Every alternative of identifier_patterns holds the ID's letters and digits, or its
    number without leading zeros, with only punctuation between them."""
    chars = re.sub(r"[^A-Za-z0-9]", "", value or "")
    if len(chars) < 3:
        return NO_ANCHORS
    digits = re.search(r"\d+$", chars)
    core = digits.group(0).lstrip("0") if digits else ""
    groups = [[("alnum", chars.lower())]]
    if len(core) >= 4 and core != chars:
        groups.append([("alnum", core)])
    return _anchors(groups, [chars])


@_per_anchor
def date_anchors(d: date | None) -> Anchors:
    """Every alternative of date_patterns holds the day's number and the year's last two
    digits."""
    if d is None:
        return NO_ANCHORS
    return _anchors([[("cs", str(d.day)), ("cs", f"{d.year % 100:02d}")]], [])


@_per_anchor
def phrase_anchors(value: str | None) -> Anchors:
    """Every alternative of phrase_patterns holds one of the phrase's words."""
    words = [w for w in re.split(r"[^\w'&]+", value or "") if w]
    return _anchors([[("ci", w.lower())] for w in words], words)


@_per_anchor
def email_anchors(email: str | None) -> Anchors:
    email = (email or "").strip()
    return _anchors([[("ci", email.lower())]] if email else [], [email])


def people_anchors(users: Iterable) -> Anchors:
    """The anchors of people_patterns(users)."""
    found = NO_ANCHORS
    for user in users:
        if user is not None:
            found = found + email_anchors(user.email) + name_anchors(user.full_name)
    return found


def patient_anchors(study) -> Anchors:
    """The anchors of patient_patterns(study)."""
    return (name_anchors(study.patient_name) + name_anchors(study.referring_physician)
            + identifier_anchors(study.patient_id) + identifier_anchors(study.accession_number)
            + date_anchors(study.patient_birth_date) + phrase_anchors(study.institution))


def site_anchors(study) -> Anchors:
    """The anchors of site_patterns(study)."""
    return phrase_anchors(study.institution) + name_anchors(study.referring_physician)
