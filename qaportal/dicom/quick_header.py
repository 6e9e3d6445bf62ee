"""Read the header of a plain native little-endian DICOM file without building a Dataset.

read_header (parse.py) tries this first: most files the portal receives are uncompressed
explicit or implicit VR little endian images with ASCII text, and walking their elements
with struct costs a tenth of pydicom. The answer is exactly the InstanceHeader pydicom's
path would return, or None ("ask pydicom") for anything else: another transfer syntax, a
character set or value that needs real decoding, a structure pydicom reads leniently
(switching VR encoding, odd delimiters, an element running past its item), and any file
that path would refuse - so every refusal, with its reason, still comes from there.
Mirrored: dcmread(stop_before_pixels) stops at the first pixel data tag, parses
undefined-length sequences and keeps everything else raw; header_from_dataset converts
the fields below; check_pixel_data reads the pixel data element and what follows it.
"""

from __future__ import annotations

import os
import re
import struct
from functools import cache
from typing import BinaryIO

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.valuerep import EXPLICIT_VR_LENGTH_16, EXPLICIT_VR_LENGTH_32

from .parse import InstanceHeader, ParseLimits, parse_da, parse_tm
from .pixelcheck import LONG_VRS, MAX_TRAILING_ELEMENTS, PIXEL_VRS

_EXPLICIT_LE = b"1.2.840.10008.1.2.1"
_IMPLICIT_LE = b"1.2.840.10008.1.2"
# Single-byte repertoires that decode ASCII as ASCII (values must be ASCII anyway).
_CHARSETS = {"", "ISO_IR 6", "ISO_IR 100", "ISO_IR 192"}
_SHORT = frozenset(vr.encode() for vr in EXPLICIT_VR_LENGTH_16)
_LONG = frozenset(vr.encode() for vr in EXPLICIT_VR_LENGTH_32)
_UNDEFINED = 0xFFFFFFFF
_PIXEL_DATA = 0x7FE00010
_OTHER_PIXELS = (0x7FE00008, 0x7FE00009)  # float pixel data: left to pydicom
_FIRST_READ = 16 * 1024
_MAX_HEAD = 8 * 1024**2  # a header (all before the pixel data) longer than this: pydicom
_MAX_VALUE = 1024  # a longer value of a field read here: left to pydicom
_MAX_TRAILING_BYTES = 64 * 1024
_MAX_DEPTH = 16
_HEAD = struct.Struct("<HHL")  # tag and 4-byte length (implicit VR, items, delimiters)
_EXPL = struct.Struct("<HH2sH")  # tag, VR, 2-byte length (explicit VR)
_U32 = struct.Struct("<L")
_U16 = struct.Struct("<H")
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


class _Defer(Exception):
    """Leave this file to pydicom."""


@cache
def _wanted() -> dict[int, tuple[str, bytes]]:
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
    return {keyword: tag for tag, (keyword, _) in _wanted().items()}


@cache
def _is_sequence(tag: int) -> bool:
    """Tell whether the dictionary says a tag is a sequence (implicit VR undefined length)."""
    try:
        return dictionary_VR(tag) == "SQ"
    except KeyError:
        return False


def quick_header(path: str | os.PathLike[str], limits: ParseLimits,
                 head: bytes | None = None) -> InstanceHeader | None:
    """Return the header of a plain native little-endian file, or None to use pydicom.
    head: the file's first bytes, if the caller has them (read from the file otherwise)."""
    try:
        with open(path, "rb") as fp:
            return _Reader(fp, os.fstat(fp.fileno()).st_size, head).header(limits)
    except (_Defer, OSError, struct.error, ValueError, IndexError):
        return None


class _Reader:
    """Walk one file's elements from a buffer that grows only as far as they need."""

    def __init__(self, fp: BinaryIO, size: int, head: bytes | None = None) -> None:
        self.fp = fp
        self.size = size
        if head is not None and len(head) >= min(size, _FIRST_READ):
            self.buf = head[:size]
            fp.seek(len(self.buf))  # need() reads on from where the buffer ends
        else:
            self.buf = fp.read(min(size, _FIRST_READ))
        self.explicit = True

    def need(self, end: int) -> None:
        """Have the bytes up to end in the buffer; defer when the file is shorter."""
        if end <= len(self.buf):
            return
        if end > self.size or end > _MAX_HEAD:
            raise _Defer
        more = min(max(end, 2 * len(self.buf)), self.size, _MAX_HEAD) - len(self.buf)
        self.buf += self.fp.read(more)
        if end > len(self.buf):
            raise _Defer

    def element(self, pos: int) -> tuple[int, bytes | None, int, int]:
        """Return (tag, VR or None, length, value position) of the element at pos."""
        if pos + 12 > len(self.buf):
            self.need(pos + 8)
        buf = self.buf
        if not self.explicit:
            group, elem, length = _HEAD.unpack_from(buf, pos)
            return group << 16 | elem, None, length, pos + 8
        group, elem, vr, length = _EXPL.unpack_from(buf, pos)
        if vr in _LONG:
            if pos + 12 > len(buf):
                self.need(pos + 12)
            return group << 16 | elem, vr, _U32.unpack_from(self.buf, pos + 8)[0], pos + 12
        if vr in _SHORT:
            return group << 16 | elem, vr, length, pos + 8
        raise _Defer  # a VR pydicom would guess about (or read as implicit)

    def header(self, limits: ParseLimits) -> InstanceHeader:
        buf = self.buf
        if len(buf) < 144 or buf[128:132] != b"DICM":
            raise _Defer
        meta, start = self.meta()
        ts = meta.get(0x00020010, (b"", b""))
        if ts[0] != b"UI" or ts[1].rstrip(b"\x00 ") not in (_EXPLICIT_LE, _IMPLICIT_LE):
            raise _Defer
        self.explicit = ts[1].rstrip(b"\x00 ") == _EXPLICIT_LE
        found, overlay, pixel_pos = self.top_level(start)
        return _build(found, meta, overlay, self.pixels(pixel_pos, found, limits), self.size)

    def meta(self) -> tuple[dict[int, tuple[bytes, bytes]], int]:
        """Read the file meta group; it must be exactly as long as its group length says."""
        buf = self.buf
        if buf[132:140] != b"\x02\x00\x00\x00UL\x04\x00":
            raise _Defer
        end = 144 + _U32.unpack_from(buf, 140)[0]
        self.need(end + 8)
        buf = self.buf
        meta, pos = {}, 144
        while pos < end:
            tag, vr, length, vpos = self.element(pos)
            if tag >> 16 != 2 or length == _UNDEFINED or vpos + length > end:
                raise _Defer
            meta[tag] = (vr, buf[vpos : vpos + length])
            pos = vpos + length
        if _U16.unpack_from(buf, end)[0] == 2:
            raise _Defer  # the group goes on past its declared length
        return meta, end

    def top_level(self, pos: int) -> tuple[dict[int, bytes], bool, int]:
        """Walk the data set to the pixel data; return the wanted raw values, overlay flag and
        the pixel data element's position."""
        wanted = _wanted()
        found: dict[int, bytes] = {}
        overlay = False
        previous = 0x0002FFFF  # no meta or command group elements from here on
        self.need(pos + 8)
        if not self.explicit and all(0x40 < b < 0x5B for b in self.buf[pos + 4 : pos + 6]):
            raise _Defer  # pydicom would switch to explicit VR
        # element() inlined for explicit VR with the bytes at hand: ~80 elements a slice.
        explicit, element, buf = self.explicit, self.element, self.buf
        unpack, unpack_u32 = _EXPL.unpack_from, _U32.unpack_from
        while True:
            if explicit and pos + 12 <= len(buf):
                group, elem, vr, length = unpack(buf, pos)
                tag = group << 16 | elem
                if vr in _LONG:
                    length, vpos = unpack_u32(buf, pos + 8)[0], pos + 12
                elif vr in _SHORT:
                    vpos = pos + 8
                else:
                    raise _Defer  # as element(): a VR pydicom would guess about
            else:
                tag, vr, length, vpos = element(pos)
                buf = self.buf
            if tag <= previous:
                raise _Defer  # out of order or repeated: pydicom keeps the last, stops oddly
            previous = tag
            if tag >= 0x60000000:  # overlays, pixel data, items: none in the groups below
                if tag == _PIXEL_DATA:
                    return found, overlay, pos
                if tag >> 16 == 0xFFFE or tag in _OTHER_PIXELS:
                    raise _Defer
                if tag & 0xFFFF == 0x3000 and tag >> 16 <= 0x601E and not tag & 0x10000:
                    overlay = True
            if length == _UNDEFINED:
                if (vr if self.explicit else b"SQ" if _is_sequence(tag) else None) != b"SQ":
                    raise _Defer
                pos = self.sequence(vpos, 0)
                buf = self.buf
                continue
            end = vpos + length
            if end > self.size:
                raise _Defer
            if tag in wanted:
                if (vr is not None and vr != wanted[tag][1]) or length > _MAX_VALUE:
                    raise _Defer
                if end > len(buf):
                    self.need(end)
                    buf = self.buf
                found[tag] = buf[vpos:end]
            pos = end

    def sequence(self, pos: int, depth: int) -> int:
        """Walk the items of an undefined-length sequence; return the position after it."""
        if depth > _MAX_DEPTH:
            raise _Defer
        while True:
            self.need(pos + 8)
            group, elem, length = _HEAD.unpack_from(self.buf, pos)
            if group != 0xFFFE or elem not in (0xE000, 0xE0DD):
                raise _Defer
            if elem == 0xE0DD:
                if length:
                    raise _Defer
                return pos + 8
            end = None if length == _UNDEFINED else pos + 8 + length
            if end is not None and end > self.size:
                raise _Defer
            pos = self.item(pos + 8, end, depth)

    def item(self, pos: int, end: int | None, depth: int) -> int:
        """Walk one item's elements (pydicom parses them); return the position after it."""
        first = True
        while end is None or pos < end:
            self.need(pos + 8)
            group, elem, length = _HEAD.unpack_from(self.buf, pos)
            if group == 0xFFFE:
                if end is None and elem == 0xE00D and not length:
                    return pos + 8
                raise _Defer
            if first and self.explicit and not all(
                    0x40 < b < 0x5B for b in self.buf[pos + 4 : pos + 6]):
                raise _Defer  # an implicit VR item in an explicit data set
            first = False
            tag, vr, length, vpos = self.element(pos)
            if tag == 0x00080005:
                raise _Defer  # an item with its own character set
            if length == _UNDEFINED:
                if (vr if self.explicit else b"SQ" if _is_sequence(tag) else None) != b"SQ":
                    raise _Defer
                pos = self.sequence(vpos, depth + 1)
            else:
                pos = vpos + length
                if pos > (self.size if end is None else end):
                    raise _Defer
        if pos != end:
            raise _Defer
        return pos

    def pixels(self, pos: int, found: dict[int, bytes], limits: ParseLimits) -> int:
        """Check the pixel data as check_pixel_data would; return the frame count."""
        self.need(pos + 12)
        if self.explicit:
            if self.buf[pos + 4 : pos + 6] not in (b"OB", b"OW"):
                raise _Defer
            length, data = _U32.unpack_from(self.buf, pos + 8)[0], pos + 12
        else:
            if self.buf[pos + 4 : pos + 6] in PIXEL_VRS:
                raise _Defer
            length, data = _U32.unpack_from(self.buf, pos + 4)[0], pos + 8
        if length == _UNDEFINED or data + length > self.size:
            raise _Defer
        frames = _frames(found)
        if frames > limits.max_frames or length < _native_length(found, frames):
            raise _Defer
        self.trailing(data + length)
        return frames

    def trailing(self, pos: int) -> None:
        """Walk what follows the pixel data as pixelcheck._walk_trailing does."""
        count = self.size - pos
        if count > _MAX_TRAILING_BYTES:
            raise _Defer
        if not count:
            return
        self.fp.seek(pos)
        tail = self.fp.read(count)
        at = 0
        for _ in range(MAX_TRAILING_ELEMENTS):
            head = tail[at : at + 8]
            if not head:
                return
            if len(head) < 8:
                raise _Defer
            vr = head[4:6]
            if self.explicit and vr.isalpha() and vr.isupper():
                if vr in LONG_VRS:
                    if at + 12 > count:
                        raise _Defer
                    length, at = _U32.unpack_from(tail, at + 8)[0], at + 12
                else:
                    length, at = _U16.unpack_from(head, 6)[0], at + 8
            else:
                length, at = _U32.unpack_from(head, 4)[0], at + 8
            if length == _UNDEFINED:
                return
            if at + length > count:
                raise _Defer
            at += length


def _text(raw: bytes | None, person: bool = False) -> str:
    """Return the first value, stripped, as parse._text gives it; defer unless plain ASCII."""
    if raw is None:
        return ""
    if raw.endswith(b"\x00"):
        raw = raw[:-1]  # one pad byte; a NUL anywhere else: pydicom's stripping is subtle
    if not raw.isascii():
        raise _Defer
    text = raw.decode("ascii")
    if not text.isprintable() or (person and "=" in text):
        raise _Defer
    return text.split("\\", 1)[0].strip(" ")


def _values(raw: bytes | None, pattern: re.Pattern[str]) -> list[str] | None:
    """Return the values of an IS or DS element (None when empty); defer on any odd one."""
    if raw is None:
        return None
    if raw.endswith(b"\x00"):
        raw = raw[:-1]
    if not raw.isascii():
        raise _Defer
    text = raw.decode("ascii")
    if not text.isprintable():
        raise _Defer
    text = text.strip(" ")
    if not text:
        return None
    if not pattern.fullmatch(text):  # each value as the value's pattern (no backslash)
        raise _Defer
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
        raise _Defer
    return _U16.unpack(raw)[0]


def _frames(found: dict[int, bytes]) -> int:
    """Return NumberOfFrames as declared_frames and header_from_dataset both read it."""
    values = _values(found.get(0x00280008), _IS)
    if values is None:
        return 1
    if len(values) != 1 or not values[0].strip(" ").isdigit():
        raise _Defer  # negative, signed or multi-valued: the two readers differ or refuse
    return max(int(values[0]), 1)


def _native_length(found: dict[int, bytes], frames: int) -> int:
    """Return the bytes native pixel data needs (pixelcheck.expected_native_length)."""
    rows, cols = _us(found.get(0x00280010)), _us(found.get(0x00280011))
    bits = _us(found.get(0x00280100))
    if rows is None or cols is None or bits is None:
        raise _Defer
    spp = _us(found.get(0x00280002)) or 1
    photometric = found.get(0x00280004)
    if photometric is not None and b"\\" in photometric:
        raise _Defer
    if _text(photometric) == "YBR_FULL_422" and spp == 3:
        return rows * cols * frames * 2 * bits // 8
    return (rows * cols * frames * spp * bits + 7) // 8


def _build(found: dict[int, bytes], meta: dict[int, tuple[bytes, bytes]], overlay: bool,
           frames: int, size: int) -> InstanceHeader:
    """Convert the raw values as header_from_dataset converts pydicom's."""
    tags = _tags()

    def text(keyword: str, person: bool = False) -> str:
        return _text(found.get(tags[keyword]), person)

    def first(keyword: str) -> float | None:
        values = _floats(found.get(tags[keyword]))
        return values[0] if values else None

    if text("SpecificCharacterSet") not in _CHARSETS or b"\\" in found.get(0x00080005, b""):
        raise _Defer
    uids = [text(k) for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")]
    sop_class = text("SOPClassUID")
    if not sop_class:
        vr, raw = meta.get(0x00020002, (b"UI", b""))
        sop_class = _text(raw) if vr == b"UI" else ""
    if not all(uids) or not sop_class:
        raise _Defer  # refused by the slow path, with its reason
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
