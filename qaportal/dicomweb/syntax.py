"""Transfer-syntax negotiation for WADO-RS multipart answers (PS3.18 8.7.3).

An Accept range asks for parts of one media type (`type="application/dicom"`) in one
transfer syntax: the `transfer-syntax` parameter, `*` for "as stored", and Explicit VR
Little Endian when the parameter is absent (the default of application/dicom and of
application/octet-stream). `*/*`, `multipart/*` and `multipart/related` without a type
parameter ask for the resource's default part type. Each instance is then served in the
most preferred syntax (highest q, then the caller's order) that it can be served in; a
range with q=0 refuses its syntax.
"""

from __future__ import annotations

from dataclasses import dataclass

from qaportal.dicom.transcode import EXPLICIT_VR_LITTLE_ENDIAN, can_serve, stored_syntax
from qaportal.dicomweb.negotiate import parse_accept

AS_STORED = "*"


@dataclass(frozen=True)
class Wanted:
    """The syntaxes a caller accepts for the parts, best first, and those it refuses."""

    syntaxes: tuple[str, ...]  # transfer syntax UIDs, or AS_STORED
    refused: frozenset[str]

    def for_instance(self, stored: str) -> str | None:
        """Return the syntax to serve an instance stored in `stored` in, or None."""
        stored = stored_syntax(stored)
        for syntax in self.syntaxes:
            chosen = stored if syntax == AS_STORED else syntax
            if chosen not in self.refused and can_serve(stored, chosen):
                return chosen
        return None


def _part_type_matches(pattern: str, part_type: str) -> bool:
    if pattern in ("*/*", part_type):
        return True
    main, _, sub = pattern.partition("/")
    return sub == "*" and part_type.startswith(main + "/")


def wanted(accept: str | None, part_type: str) -> Wanted:
    """Return what an Accept header asks of a multipart answer whose parts are part_type."""
    ranked: list[tuple[float, int, str]] = []
    refused: set[str] = set()
    for order, rng in enumerate(parse_accept(accept)):
        if rng.type not in ("*/*", "multipart/*", "multipart/related"):
            continue
        if not _part_type_matches(rng.params.get("type", part_type).lower(), part_type):
            continue
        syntax = rng.params.get("transfer-syntax", EXPLICIT_VR_LITTLE_ENDIAN)
        if rng.q <= 0:
            if syntax != AS_STORED:
                refused.add(syntax)
            continue
        ranked.append((-rng.q, order, syntax))
    ranked.sort()
    return Wanted(tuple(dict.fromkeys(s for _, _, s in ranked)), frozenset(refused))
