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
import struct
from collections.abc import Iterator
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag

BULK_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
INLINE_LIMIT = 1024
PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})  # pixel, float, double pixel
_NO_BULK = 1 << 62  # a threshold pydicom's per-element conversion never reaches


def to_json(ds: Dataset, bulk_base: str = "", *, inline_limit: int = INLINE_LIMIT,
            _prefix: str = "", _codec: str | None = "latin_1") -> dict[str, Any]:
    """Return ds as a DICOM JSON object; BulkDataURIs are bulk_base + the element's path.

    Elements pydicom has not decoded yet are converted straight from their bytes where the
    encoding is plain (little endian, a known VR, one character set): the same result as
    pydicom's conversion (a test compares them on pydicom's test files) at a fraction of
    the cost; anything else goes through pydicom.
    """
    out: dict[str, Any] = {}
    codec = _charset(ds, _codec)
    for tag in sorted(ds.keys()):
        if tag.element == 0 or tag.group == 0x0002:
            continue
        key = f"{int(tag):08X}"
        raw = ds.get_item(tag, keep_deferred=True)
        if isinstance(raw, RawDataElement) and raw.value is None and raw.length:
            deferred = _deferred_binary(raw)  # left on disk by dcmread(defer_size=...)
            if deferred is not None:
                out[key] = {"vr": deferred, "BulkDataURI": bulk_base + _prefix + key}
                continue
        if isinstance(raw, RawDataElement):
            fast = _from_raw(raw, codec, bulk_base + _prefix + key, inline_limit)
            if fast is not None:
                out[key] = fast
                continue
        elem = ds[tag]
        vr = _vr(elem)
        if vr == "SQ":
            items = [to_json(item, bulk_base, inline_limit=inline_limit,
                             _prefix=f"{_prefix}{key}/{i}/", _codec=codec)
                     for i, item in enumerate(elem.value or [])]
            out[key] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
        elif vr in BULK_VRS:
            out[key] = _binary(int(tag), vr, elem.value, elem.is_undefined_length,
                               bulk_base + _prefix + key, inline_limit)
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


def _binary(tag: int, vr: str, value: Any, undefined: bool, uri: str,
            inline_limit: int) -> dict[str, Any]:
    if value is None or value == b"":
        return {"vr": vr}
    if tag in PIXEL_TAGS or undefined or not isinstance(
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


# -- straight from the bytes -----------------------------------------------------------------
_NUMBERS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d", "UV": "Q",
            "SV": "q"}
_SPLIT_THEN_STRIP = frozenset({"LO", "SH", "UC"})  # pydicom's convert_text
_STRIP_THEN_SPLIT = frozenset({"AS", "CS", "DA", "DT", "TM", "UI"})  # its multi_string
_SINGLE = frozenset({"LT", "ST", "UT"})
_USES_CHARSET = frozenset({"LO", "SH", "UC", "LT", "ST", "UT", "PN"})
_CODECS = {"": "latin_1", "ISO_IR 6": "latin_1", "ISO_IR 100": "latin_1",
           "ISO_IR 192": "utf_8"}


def _charset(ds: Dataset, inherited: str | None) -> str | None:
    """Return the Python codec of ds's text (None: one pydicom must handle)."""
    if "SpecificCharacterSet" not in ds:
        return inherited
    value = ds.SpecificCharacterSet
    if not isinstance(value, str):
        return None
    return _CODECS.get(value.strip())


def _from_raw(raw: RawDataElement, codec: str | None, uri: str,
              inline_limit: int) -> dict[str, Any] | None:
    """Convert an undecoded element from its bytes, or None to let pydicom do it."""
    tag = raw.tag
    if not raw.is_little_endian or raw.value is None:
        return None
    vr = raw.VR
    if vr is None:
        if tag.group % 2:
            return None  # an implicit private element: pydicom asks its private dictionary
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return None
    if vr == "UN":
        return None  # pydicom may know the real VR (its replace_un_with_known_vr)
    if vr in BULK_VRS:
        return _binary(int(tag), vr, raw.value, raw.length == 0xFFFFFFFF, uri, inline_limit)
    if " or " in vr or vr == "SQ" or raw.length == 0xFFFFFFFF:
        return None
    value: bytes = raw.value
    if not value:
        return {"vr": vr}
    try:
        if vr in _NUMBERS:
            return _numbers(vr, value)
        if vr == "AT":
            if len(value) % 4:
                return None
            pairs = struct.unpack(f"<{len(value) // 2}H", value)
            return {"vr": vr, "Value": [f"{g:04X}{e:04X}" for g, e in zip(
                pairs[::2], pairs[1::2], strict=True)]}
        if vr in _USES_CHARSET and codec is None:
            return None
        text = value.decode(codec if vr in _USES_CHARSET else "latin_1")
        values = _texts(vr, text, value, codec)
    except (UnicodeDecodeError, ValueError, struct.error):
        return None
    if values is None:
        return None
    if len(values) == 1 and values[0] in ("", None):
        return {"vr": vr}
    return {"vr": vr, "Value": values}


def _deferred_binary(raw: RawDataElement) -> str | None:
    """Return the VR of a binary element whose value was not read, or None."""
    if raw.VR is not None:
        return raw.VR if raw.VR in BULK_VRS else None
    if int(raw.tag) == 0x7FE00010:
        return "OW"  # implicit VR pixel data is OW (PS3.5 A.1)
    return None


def _numbers(vr: str, value: bytes) -> dict[str, Any] | None:
    fmt = _NUMBERS[vr]
    size = struct.calcsize(fmt)
    if len(value) % size:
        return None
    return {"vr": vr, "Value": list(struct.unpack(f"<{len(value) // size}{fmt}", value))}


def _texts(vr: str, text: str, value: bytes, codec: str | None) -> list[Any] | None:
    if vr in _SINGLE:
        return [text.rstrip("\x00 ")]
    if vr == "UR":
        return [text.rstrip()]
    if vr in _SPLIT_THEN_STRIP:
        return [v.rstrip("\x00 ") for v in text.split("\\")]
    if vr in _STRIP_THEN_SPLIT:
        return text.rstrip(" \x00").split("\\")
    if vr == "AE":
        return [v.strip() for v in text.split("\\")]
    if vr == "PN":
        names = value.rstrip(b"\x00 ").decode(codec or "latin_1").split("\\")
        if any("=" in n for n in names):
            return None
        return [{"Alphabetic": n} for n in names]
    if vr in ("DS", "IS"):
        items = text.strip().rstrip(" \x00").split("\\")
        if any(not i.strip() for i in items):
            return None
        if vr == "DS":
            return [float(i) for i in items]
        return [int(i) for i in items]
    return None
