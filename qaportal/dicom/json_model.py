"""A data set in the DICOM JSON model (PS3.18 F.2), large binary values as BulkDataURIs.

Pixel data, and any binary value (OB, OD, OF, OL, OV, OW, UN) longer than INLINE_LIMIT
bytes, is written as {"vr": ..., "BulkDataURI": base + path}, where path names the element
from the top of the data set: "7FE00010" or, inside sequences, "00540016/0/00181072"
(tag / item index / tag). Text stays inline so that a viewer shows it without a second
request. Smaller binary values are InlineBinary (base64). Group lengths and the file meta
(group 0002, not part of the data set) are left out.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag

BULK_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
INLINE_LIMIT = 1024
PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})  # pixel, float, double pixel
_NO_BULK = 1 << 62  # a threshold pydicom's per-element conversion never reaches


def to_json(ds: Dataset, bulk_base: str = "", *, inline_limit: int = INLINE_LIMIT,
            _prefix: str = "") -> dict[str, Any]:
    """Return ds as a DICOM JSON object; BulkDataURIs are bulk_base + the element's path."""
    out: dict[str, Any] = {}
    for elem in ds:
        tag = elem.tag
        if tag.element == 0 or tag.group == 0x0002:
            continue
        key = f"{int(tag):08X}"
        vr = _vr(elem)
        if vr == "SQ":
            items = [to_json(item, bulk_base, inline_limit=inline_limit,
                             _prefix=f"{_prefix}{key}/{i}/")
                     for i, item in enumerate(elem.value or [])]
            out[key] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
        elif vr in BULK_VRS:
            out[key] = _binary(elem, vr, bulk_base + _prefix + key, inline_limit)
        else:
            out[key] = _plain(elem, vr)
    return out


def find_element(ds: Dataset, path: str) -> DataElement | None:
    """Return the element a BulkDataURI path names ("7FE00010", "00540016/0/00181072")."""
    parts = path.strip("/").split("/")
    if len(parts) % 2 != 1:
        return None
    current = ds
    for index in range(0, len(parts), 2):
        tag = _parse_tag(parts[index])
        if tag is None or tag not in current:
            return None
        elem = current[tag]
        if index == len(parts) - 1:
            return elem
        if _vr(elem) != "SQ" or not parts[index + 1].isdigit():
            return None
        item = int(parts[index + 1])
        if item >= len(elem.value or []):
            return None
        current = elem.value[item]
    return None


def bulk_paths(ds: Dataset) -> Iterator[str]:
    """Yield the path of every element to_json writes as a BulkDataURI (for tests, tools)."""
    def walk(obj: dict[str, Any]) -> Iterator[str]:
        for value in obj.values():
            if "BulkDataURI" in value:
                yield value["BulkDataURI"]
            if value["vr"] == "SQ":
                for item in value.get("Value", []):
                    yield from walk(item)

    yield from walk(to_json(ds))


def bulk_value(elem: DataElement) -> bytes:
    """Return the raw bytes of a binary element, as written little endian."""
    value = elem.value
    if value is None:
        return b""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    raise ValueError("not a binary value")


def _vr(elem: DataElement) -> str:
    vr = elem.VR or "UN"
    # Ambiguous VRs pydicom could not resolve: the binary reading is the safe one.
    if " or " in vr:
        return "OW" if "OW" in vr else vr.split(" or ")[0]
    return vr


def _binary(elem: DataElement, vr: str, uri: str, inline_limit: int) -> dict[str, Any]:
    value = elem.value
    if value is None or value == b"":
        return {"vr": vr}
    if int(elem.tag) in PIXEL_TAGS or elem.is_undefined_length or not isinstance(
            value, bytes | bytearray) or len(value) > inline_limit:
        return {"vr": vr, "BulkDataURI": uri}
    return {"vr": vr, "InlineBinary": base64.b64encode(bytes(value)).decode("ascii")}


def _plain(elem: DataElement, vr: str) -> dict[str, Any]:
    try:
        return elem.to_json_dict(None, _NO_BULK)
    except Exception:  # noqa: BLE001 - a malformed value is left out, never the whole header
        return {"vr": vr}


def _parse_tag(text: str) -> BaseTag | None:
    if len(text) != 8:
        return None
    try:
        return Tag(int(text, 16))
    except ValueError:
        return None
