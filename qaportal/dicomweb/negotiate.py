"""HTTP content negotiation for DICOMweb: Accept headers with parameters and q-values.

DICOMweb media types carry parameters that matter (`multipart/related; type="application/
dicom"; transfer-syntax=1.2.840.10008.1.2.1`), which generic Accept parsers drop. A media
range matches an offer when its type and subtype match (wildcards allowed) and each of its
parameters other than q equals the offer's (`transfer-syntax=*` matches any, and a `type`
parameter is itself a range: `type="*/*"`, as dicomweb-client sends, matches any part
type). The offer chosen is the one with the highest q of a range matching it; ties go to
the server's order.
Nothing acceptable is 406 (`abort_not_acceptable`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import abort


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header."""

    type: str  # "multipart/related", "application/*", "*/*"
    params: dict[str, str] = field(default_factory=dict)
    q: float = 1.0


@dataclass(frozen=True)
class Offer:
    """A representation the server can produce."""

    type: str
    params: dict[str, str] = field(default_factory=dict)


def _split(text: str, sep: str) -> list[str]:
    """Split on sep outside double quotes."""
    parts, buf, quoted = [], [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return parts


def parse_media_type(text: str) -> tuple[str, dict[str, str]]:
    """Parse 'type/subtype; a=b; c="d"' into ('type/subtype', {'a': 'b', 'c': 'd'})."""
    pieces = _split(text, ";")
    mtype = pieces[0].strip().lower()
    params = {}
    for piece in pieces[1:]:
        name, _, value = piece.partition("=")
        name = name.strip().lower()
        if name:
            params[name] = value.strip().strip('"')
    return mtype, params


def parse_accept(header: str | None) -> list[MediaRange]:
    """Return the media ranges of an Accept header (none or empty: */*)."""
    ranges = []
    for item in _split(header or "", ","):
        if not item.strip():
            continue
        mtype, params = parse_media_type(item)
        if "/" not in mtype:
            continue
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 0.0
        ranges.append(MediaRange(mtype, params, max(0.0, min(q, 1.0))))
    return ranges or [MediaRange("*/*")]


def _type_matches(pattern: str, mtype: str) -> bool:
    if pattern == "*/*":
        return True
    main, _, sub = pattern.partition("/")
    omain, _, osub = mtype.partition("/")
    return main == omain and sub in ("*", osub)


def matches(rng: MediaRange, offer: Offer) -> bool:
    """Tell whether a media range accepts an offer."""
    if not _type_matches(rng.type, offer.type):
        return False
    for name, value in rng.params.items():
        have = offer.params.get(name)
        if name == "transfer-syntax" and value == "*":
            continue
        if name == "type" and have is not None:
            # multipart/related; type="image/*" (or "*/*") is a range over the part type.
            if _type_matches(value.lower(), have.lower()):
                continue
            return False
        if have is None or have.lower() != value.lower():
            return False
    return True


def _specificity(rng: MediaRange) -> tuple[int, int, int]:
    main, _, sub = rng.type.partition("/")
    return (main != "*", sub != "*", len(rng.params))


def quality(ranges: list[MediaRange], offer: Offer) -> float:
    """Return the q the most specific matching range gives an offer (0: not acceptable)."""
    found = [r for r in ranges if matches(r, offer)]
    if not found:
        return 0.0
    return max(found, key=_specificity).q


def choose(header: str | None, offers: list[Offer]) -> Offer | None:
    """Return the best offer for an Accept header, or None when nothing is acceptable.

    Each offer takes the q of the most specific range matching it (RFC 9110 12.5.1), so
    `*/*, application/dicom+json;q=0` refuses JSON; ties go to the server's order.
    """
    ranges = parse_accept(header)
    best, chosen = 0.0, None
    for offer in offers:
        q = quality(ranges, offer)
        if q > best:
            best, chosen = q, offer
    return chosen


def choose_or_406(header: str | None, offers: list[Offer]) -> Offer:
    """Return the best offer, or answer 406 naming what this resource offers."""
    chosen = choose(header, offers)
    if chosen is None:
        abort(406, description="none of the accepted media types is available here; "
                               "offered: " + ", ".join(render_offer(o) for o in offers))
    return chosen


def render_offer(offer: Offer) -> str:
    """Return an offer as a Content-Type value."""
    params = "".join(f'; {k}="{v}"' if k == "type" else f"; {k}={v}"
                     for k, v in offer.params.items())
    return offer.type + params

