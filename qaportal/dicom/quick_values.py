"""The fields quick_header reads and how their raw values become an InstanceHeader.

The keywords read (with the tags and VRs pydicom's dictionary gives them), the decoders of
their values (ASCII text, IS and DS numbers, US integers), NumberOfFrames and the native
pixel data length as pixelcheck reads them, and build_header, which converts the raw values as
header_from_dataset converts pydicom's. Every decoder raises Defer ("ask pydicom") on a
value it cannot read exactly as pydicom would.
"""

from __future__ import annotations

import re
import struct
from functools import cache

from pydicom.datadict import dictionary_VR, tag_for_keyword

from .parse import InstanceHeader, parse_da, parse_tm

# Single-byte repertoires that decode ASCII as ASCII (values must be ASCII anyway).
_CHARSETS = {"", "ISO_IR 6", "ISO_IR 100", "ISO_IR 192"}
U16 = struct.Struct("<H")
_IS_VALUE = r" *[+-]?[0-9]{1,12} *"
_DS_VALUE = r" *[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})? *"
# Every value of a multi-valued text: one match instead of one per value.
_IS = re.compile(rf"{_IS_VALUE}(?:\\{_IS_VALUE})*")
_DS = re.compile(rf"{_DS_VALUE}(?:\\{_DS_VALUE})*")

_KEYWORDS = (
    "SpecificCharacterSet", "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID",
    "SeriesInstanceUID", "PatientName", "PatientID", "PatientSex", "PatientBirthDate",
    "AccessionNumber", "StudyDate", "StudyTime", "StudyDescription", "SeriesDescription",
    "SeriesNumber", "Modality", "BodyPartExamined", "InstitutionName",
    "ReferringPhysicianName", "InstanceNumber", "SliceLocation", "ImagePositionPatient",
    "ImageOrientationPatient", "Rows", "Columns", "NumberOfFrames", "BitsAllocated",
    "SamplesPerPixel", "PhotometricInterpretation", "BurnedInAnnotation", "WindowCenter",
    "WindowWidth",
)


class Defer(Exception):
    """Leave this file to pydicom."""


@cache
def wanted_tags() -> dict[int, tuple[str, bytes]]:
    """Map the tags read here to (keyword, dictionary VR), from pydicom's dictionary once."""
    out = {}
    for keyword in _KEYWORDS:
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise LookupError(f"{keyword} is not in pydicom's dictionary")
        out[tag] = (keyword, dictionary_VR(tag).encode())
    return out


@cache
def _tags() -> dict[str, int]:
    """Map the keywords read here to their tags."""
    return {keyword: tag for tag, (keyword, _) in wanted_tags().items()}


def _text(raw: bytes | None, person: bool = False) -> str:
    """Return the first value, stripped, as parse._text gives it; defer unless plain ASCII."""
    if raw is None:
        return ""
    if raw.endswith(b"\x00"):
        raw = raw[:-1]  # one pad byte; a NUL anywhere else: pydicom's stripping is subtle
    if not raw.isascii():
        raise Defer
    text = raw.decode("ascii")
    if not text.isprintable() or (person and "=" in text):
        raise Defer
    return text.split("\\", 1)[0].strip(" ")


def _values(raw: bytes | None, pattern: re.Pattern[str]) -> list[str] | None:
    """Return the values of an IS or DS element (None when empty); defer on any odd one."""
    if raw is None:
        return None
    if raw.endswith(b"\x00"):
        raw = raw[:-1]
    if not raw.isascii():
        raise Defer
    text = raw.decode("ascii")
    if not text.isprintable():
        raise Defer
    text = text.strip(" ")
    if not text:
        return None
    if not pattern.fullmatch(text):  # each value as the value's pattern (no backslash)
        raise Defer
    return text.split("\\")


def _int(raw: bytes | None) -> int | None:
    values = _values(raw, _IS)
    return None if values is None else int(float(int(values[0])))


def _floats(raw: bytes | None) -> tuple[float, ...] | None:
    values = _values(raw, _DS)
    return None if values is None else tuple(map(float, values))


def _us(raw: bytes | None) -> int | None:
    """Return a single US value; defer on an empty or multi-valued one."""
    if raw is None:
        return None
    if len(raw) != 2:
        raise Defer
    return U16.unpack(raw)[0]


def frame_count(found: dict[int, bytes]) -> int:
    """Return NumberOfFrames as declared_frames and header_from_dataset both read it."""
    values = _values(found.get(0x00280008), _IS)
    if values is None:
        return 1
    if len(values) != 1 or not values[0].strip(" ").isdigit():
        raise Defer  # negative, signed or multi-valued: the two readers differ or refuse
    return max(int(values[0]), 1)


def native_length(found: dict[int, bytes], frames: int) -> int:
    """Return the bytes native pixel data needs (pixelcheck.expected_native_length)."""
    rows, cols = _us(found.get(0x00280010)), _us(found.get(0x00280011))
    bits = _us(found.get(0x00280100))
    if rows is None or cols is None or bits is None:
        raise Defer
    spp = _us(found.get(0x00280002)) or 1
    photometric = found.get(0x00280004)
    if photometric is not None and b"\\" in photometric:
        raise Defer
    if _text(photometric) == "YBR_FULL_422" and spp == 3:
        return rows * cols * frames * 2 * bits // 8
    return (rows * cols * frames * spp * bits + 7) // 8


def build_header(found: dict[int, bytes], meta: dict[int, tuple[bytes, bytes]], overlay: bool,
           frames: int, size: int) -> InstanceHeader:
    """Convert the raw values as header_from_dataset converts pydicom's."""
    tags = _tags()

    def text(keyword: str, person: bool = False) -> str:
        return _text(found.get(tags[keyword]), person)

    def first(keyword: str) -> float | None:
        values = _floats(found.get(tags[keyword]))
        return values[0] if values else None

    if text("SpecificCharacterSet") not in _CHARSETS or b"\\" in found.get(0x00080005, b""):
        raise Defer
    uids = [text(k) for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")]
    sop_class = text("SOPClassUID")
    if not sop_class:
        vr, raw = meta.get(0x00020002, (b"UI", b""))
        sop_class = _text(raw) if vr == b"UI" else ""
    if not all(uids) or not sop_class:
        raise Defer  # refused by the slow path, with its reason
    position = _floats(found.get(tags["ImagePositionPatient"]))
    return InstanceHeader(
        study_uid=uids[0], series_uid=uids[1], sop_uid=uids[2], sop_class_uid=sop_class,
        patient_name=text("PatientName", True), patient_id=text("PatientID"),
        patient_sex=text("PatientSex"), patient_birth_date=parse_da(text("PatientBirthDate")),
        accession_number=text("AccessionNumber"), study_date=parse_da(text("StudyDate")),
        study_time=parse_tm(text("StudyTime")), study_description=text("StudyDescription"),
        series_description=text("SeriesDescription"),
        series_number=_int(found.get(tags["SeriesNumber"])), modality=text("Modality"),
        body_part=text("BodyPartExamined"), institution=text("InstitutionName"),
        referring_physician=text("ReferringPhysicianName", True),
        instance_number=_int(found.get(tags["InstanceNumber"])),
        slice_location=first("SliceLocation"),
        image_position=position if position and len(position) == 3 else None,
        image_orientation=_floats(found.get(tags["ImageOrientationPatient"])),
        rows=_us(found.get(tags["Rows"])), columns=_us(found.get(tags["Columns"])),
        frames=frames, bits_allocated=_us(found.get(tags["BitsAllocated"])),
        samples_per_pixel=_us(found.get(tags["SamplesPerPixel"])),
        transfer_syntax_uid=_text(meta[0x00020010][1]),
        photometric_interpretation=text("PhotometricInterpretation"),
        burned_in_annotation={"YES": True, "NO": False}.get(
            text("BurnedInAnnotation").upper()),
        has_overlay_data=overlay, window_center=first("WindowCenter"),
        window_width=first("WindowWidth"), has_pixel_data=True, file_size=size,
    )
