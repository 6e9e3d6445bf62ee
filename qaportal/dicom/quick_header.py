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
the fields (as quick_values.py does); check_pixel_data reads the pixel data element and
what follows it.
"""

from __future__ import annotations

import os
import struct
from functools import cache
from typing import BinaryIO

from pydicom.datadict import dictionary_VR
from pydicom.valuerep import EXPLICIT_VR_LENGTH_16, EXPLICIT_VR_LENGTH_32

from .parse import InstanceHeader, ParseLimits
from .pixelcheck import LONG_VRS, MAX_TRAILING_ELEMENTS, PIXEL_VRS
from .quick_values import U16, Defer, build_header, frame_count, native_length, wanted_tags

_EXPLICIT_LE = b"1.2.840.10008.1.2.1"
_IMPLICIT_LE = b"1.2.840.10008.1.2"
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
    except (Defer, OSError, struct.error, ValueError, IndexError):
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
            raise Defer
        more = min(max(end, 2 * len(self.buf)), self.size, _MAX_HEAD) - len(self.buf)
        self.buf += self.fp.read(more)
        if end > len(self.buf):
            raise Defer

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
        raise Defer  # a VR pydicom would guess about (or read as implicit)

    def header(self, limits: ParseLimits) -> InstanceHeader:
        buf = self.buf
        if len(buf) < 144 or buf[128:132] != b"DICM":
            raise Defer
        meta, start = self.meta()
        ts = meta.get(0x00020010, (b"", b""))
        if ts[0] != b"UI" or ts[1].rstrip(b"\x00 ") not in (_EXPLICIT_LE, _IMPLICIT_LE):
            raise Defer
        self.explicit = ts[1].rstrip(b"\x00 ") == _EXPLICIT_LE
        found, overlay, pixel_pos = self.top_level(start)
        return build_header(found, meta, overlay, self.pixels(pixel_pos, found, limits), self.size)

    def meta(self) -> tuple[dict[int, tuple[bytes, bytes]], int]:
        """Read the file meta group; it must be exactly as long as its group length says."""
        buf = self.buf
        if buf[132:140] != b"\x02\x00\x00\x00UL\x04\x00":
            raise Defer
        end = 144 + _U32.unpack_from(buf, 140)[0]
        self.need(end + 8)
        buf = self.buf
        meta, pos = {}, 144
        while pos < end:
            tag, vr, length, vpos = self.element(pos)
            if tag >> 16 != 2 or length == _UNDEFINED or vpos + length > end:
                raise Defer
            meta[tag] = (vr, buf[vpos : vpos + length])
            pos = vpos + length
        if U16.unpack_from(buf, end)[0] == 2:
            raise Defer  # the group goes on past its declared length
        return meta, end

    def top_level(self, pos: int) -> tuple[dict[int, bytes], bool, int]:
        """Walk the data set to the pixel data; return the wanted raw values, overlay flag and
        the pixel data element's position."""
        wanted = wanted_tags()
        found: dict[int, bytes] = {}
        overlay = False
        previous = 0x0002FFFF  # no meta or command group elements from here on
        self.need(pos + 8)
        if not self.explicit and all(0x40 < b < 0x5B for b in self.buf[pos + 4 : pos + 6]):
            raise Defer  # pydicom would switch to explicit VR
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
                    raise Defer  # as element(): a VR pydicom would guess about
            else:
                tag, vr, length, vpos = element(pos)
                buf = self.buf
            if tag <= previous:
                raise Defer  # out of order or repeated: pydicom keeps the last, stops oddly
            previous = tag
            if tag >= 0x60000000:  # overlays, pixel data, items: none in the groups below
                if tag == _PIXEL_DATA:
                    return found, overlay, pos
                if tag >> 16 == 0xFFFE or tag in _OTHER_PIXELS:
                    raise Defer
                if tag & 0xFFFF == 0x3000 and tag >> 16 <= 0x601E and not tag & 0x10000:
                    overlay = True
            if length == _UNDEFINED:
                if (vr if self.explicit else b"SQ" if _is_sequence(tag) else None) != b"SQ":
                    raise Defer
                pos = self.sequence(vpos, 0)
                buf = self.buf
                continue
            end = vpos + length
            if end > self.size:
                raise Defer
            if tag in wanted:
                if (vr is not None and vr != wanted[tag][1]) or length > _MAX_VALUE:
                    raise Defer
                if end > len(buf):
                    self.need(end)
                    buf = self.buf
                found[tag] = buf[vpos:end]
            pos = end

    def sequence(self, pos: int, depth: int) -> int:
        """Walk the items of an undefined-length sequence; return the position after it."""
        if depth > _MAX_DEPTH:
            raise Defer
        while True:
            self.need(pos + 8)
            group, elem, length = _HEAD.unpack_from(self.buf, pos)
            if group != 0xFFFE or elem not in (0xE000, 0xE0DD):
                raise Defer
            if elem == 0xE0DD:
                if length:
                    raise Defer
                return pos + 8
            end = None if length == _UNDEFINED else pos + 8 + length
            if end is not None and end > self.size:
                raise Defer
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
                raise Defer
            if first and self.explicit and not all(
                    0x40 < b < 0x5B for b in self.buf[pos + 4 : pos + 6]):
                raise Defer  # an implicit VR item in an explicit data set
            first = False
            tag, vr, length, vpos = self.element(pos)
            if tag == 0x00080005:
                raise Defer  # an item with its own character set
            if length == _UNDEFINED:
                if (vr if self.explicit else b"SQ" if _is_sequence(tag) else None) != b"SQ":
                    raise Defer
                pos = self.sequence(vpos, depth + 1)
            else:
                pos = vpos + length
                if pos > (self.size if end is None else end):
                    raise Defer
        if pos != end:
            raise Defer
        return pos

    def pixels(self, pos: int, found: dict[int, bytes], limits: ParseLimits) -> int:
        """Check the pixel data as check_pixel_data would; return the frame count."""
        self.need(pos + 12)
        if self.explicit:
            if self.buf[pos + 4 : pos + 6] not in (b"OB", b"OW"):
                raise Defer
            length, data = _U32.unpack_from(self.buf, pos + 8)[0], pos + 12
        else:
            if self.buf[pos + 4 : pos + 6] in PIXEL_VRS:
                raise Defer
            length, data = _U32.unpack_from(self.buf, pos + 4)[0], pos + 8
        if length == _UNDEFINED or data + length > self.size:
            raise Defer
        frames = frame_count(found)
        if frames > limits.max_frames or length < native_length(found, frames):
            raise Defer
        self.trailing(data + length)
        return frames

    def trailing(self, pos: int) -> None:
        """Walk what follows the pixel data as pixelcheck._walk_trailing does."""
        count = self.size - pos
        if count > _MAX_TRAILING_BYTES:
            raise Defer
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
                raise Defer
            vr = head[4:6]
            if self.explicit and vr.isalpha() and vr.isupper():
                if vr in LONG_VRS:
                    if at + 12 > count:
                        raise Defer
                    length, at = _U32.unpack_from(tail, at + 8)[0], at + 12
                else:
                    length, at = U16.unpack_from(head, 6)[0], at + 8
            else:
                length, at = _U32.unpack_from(head, 4)[0], at + 8
            if length == _UNDEFINED:
                return
            if at + length > count:
                raise Defer
            at += length
