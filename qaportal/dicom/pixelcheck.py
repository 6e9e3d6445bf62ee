"""Check at ingest that the pixel data is all there and holds the frames the header declares.

Runs on the stream dcmread(stop_before_pixels=True) left at the pixel data element, with a
few small reads and skips: nothing here reads pixel values, and nothing loops or allocates
per declared frame. What the standard allows (PS3.5 A.4, PS3.3 C.7.6.3):
- native pixel data holds Rows x Columns x SamplesPerPixel x BitsAllocated/8 bytes per
  frame (YBR_FULL_422: two samples' worth), so NumberOfFrames frames need that many bytes;
- encapsulated pixel data: a fragment holds data of one frame only (a frame may span
  several fragments), so NumberOfFrames can never exceed the number of fragments; a Basic
  Offset Table that is not empty has one offset per frame; an Extended Offset Table
  (7FE0,0001) has one 8-byte offset per frame and may only be used with one fragment per
  frame. The exception is the MPEG-2/MPEG-4/HEVC video transfer syntaxes, whose frames
  live in one video stream cut into fragments anywhere: only the cap applies there.
"""

from __future__ import annotations

import struct
from typing import Protocol

from pydicom.dataset import Dataset
from pydicom.uid import UID, MPEGTransferSyntaxes

from .errors import DicomRejected

PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel, Float Pixel, Double Float Pixel Data
_FLOAT_BITS = {0x7FE00008: 32, 0x7FE00009: 64}
_EXTENDED_OFFSET_TABLE = 0x7FE00001
_MAX_FRAGMENTS = 1_000_000
PIXEL_VRS = (b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN")
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"}
MAX_TRAILING_ELEMENTS = 10_000
# JPIP Referenced (Deflate), JPIP HTJ2K Referenced (Deflate): the pixels live elsewhere.
_REFERENCED = {"1.2.840.10008.1.2.4.94", "1.2.840.10008.1.2.4.95",
               "1.2.840.10008.1.2.4.204", "1.2.840.10008.1.2.4.205"}


class Stream(Protocol):
    """What the checks need of a reader (streams.BoundedReader, streams.InflatingReader)."""

    def read(self, n: int = -1) -> bytes: ...
    def tell(self) -> int: ...
    def skip(self, n: int) -> bool: ...


def has_overlay_data(ds: Dataset) -> bool:
    """Tell whether ds holds Overlay Data (60xx,3000) in any of the 16 overlay groups."""
    return any(0x60003000 + (group << 16) in ds for group in range(0, 0x20, 2))


def declared_frames(ds: Dataset) -> int:
    """Return NumberOfFrames as an integer (1 when absent); refuse one that is no count."""
    raw = ds.get("NumberOfFrames")
    if raw is None or str(raw).strip() == "":
        return 1
    try:
        frames = int(str(raw).strip())
    except ValueError:
        return 1  # an unreadable value: treated as one frame, as the renderer does
    if frames < 0:
        raise DicomRejected(f"NumberOfFrames {frames} is not a frame count")
    return max(frames, 1)


def check_pixel_data(stream: Stream, ds: Dataset, transfer_syntax: str, max_frames: int) -> bool:
    """Check the pixel data element at the stream's position; return whether it is present."""
    frames = declared_frames(ds)
    if frames > max_frames:
        raise DicomRejected(f"too many frames: NumberOfFrames {frames} is over the limit "
                            f"of {max_frames}")
    implicit, little = ds.original_encoding
    endian = "<" if little in (True, None) else ">"
    tag_bytes = stream.read(4)
    if len(tag_bytes) < 4:
        if "Rows" in ds:
            raise DicomRejected("truncated file")
        if frames > 1 and transfer_syntax not in _REFERENCED:
            raise DicomRejected(f"NumberOfFrames {frames} but no pixel data")
        return False
    group, elem = struct.unpack(f"{endian}HH", tag_bytes)
    tag = group << 16 | elem
    if tag not in PIXEL_TAGS:
        raise DicomRejected("unreadable DICOM header (unexpected element before pixel data)")
    # Sniff the VR rather than trust the transfer syntax: some writers put an implicit VR
    # dataset behind an explicit VR meta header, and pydicom reads those too.
    peek = _read_exact(stream, 4)
    if peek[:2] in PIXEL_VRS:
        length = struct.unpack(f"{endian}L", _read_exact(stream, 4))[0]
    else:
        length = struct.unpack(f"{endian}L", peek)[0]
    if length == 0xFFFFFFFF:
        fragments, offsets = _walk_fragments(stream)
        _check_encapsulated(ds, transfer_syntax, frames, fragments, offsets)
        _walk_trailing(stream, endian, explicit=not implicit)
        return True
    if not stream.skip(length):
        raise DicomRejected("truncated file")
    _walk_trailing(stream, endian, explicit=not implicit)
    expected = expected_native_length(ds, tag)
    if expected is None:
        if frames > 1:  # compressed or unknown encoding without encapsulation: uncheckable
            raise DicomRejected(f"NumberOfFrames {frames} cannot be checked against pixel "
                                "data that is not encapsulated as its transfer syntax needs")
    elif length < expected:
        if frames > 1:
            raise DicomRejected(f"NumberOfFrames {frames} does not match the pixel data "
                                f"({expected} bytes needed, {length} present)")
        raise DicomRejected("truncated pixel data")
    return True


def _walk_fragments(stream: Stream) -> tuple[int, int]:
    """Skip through the items to the delimiter; return (fragments, basic offset entries)."""
    offsets = -1
    fragments = 0
    for _ in range(_MAX_FRAGMENTS):
        tag, length = struct.unpack("<LL", _read_exact(stream, 8))
        if tag == 0xE0DDFFFE:  # Sequence Delimitation Item (FFFE,E0DD) read as "<L" of "<HH"
            if offsets < 0:
                raise DicomRejected("corrupt encapsulated pixel data (no basic offset table)")
            return fragments, offsets
        if tag != 0xE000FFFE:
            raise DicomRejected("corrupt encapsulated pixel data")
        if length == 0xFFFFFFFF or not stream.skip(length):
            raise DicomRejected("truncated file")
        if offsets < 0:
            if length % 4:
                raise DicomRejected("corrupt encapsulated pixel data (basic offset table)")
            offsets = length // 4
        else:
            fragments += 1
    raise DicomRejected("corrupt encapsulated pixel data (too many fragments)")


def _walk_trailing(stream: Stream, endian: str, *, explicit: bool) -> None:
    """Skip the elements after the pixel data; refuse one whose value runs past the end."""
    for _ in range(MAX_TRAILING_ELEMENTS):
        head = stream.read(8)
        if not head:
            return
        if len(head) < 8:
            raise DicomRejected("truncated file: an element runs past the end of the data")
        if explicit and head[4:6].isalpha() and head[4:6].isupper():
            if head[4:6] in LONG_VRS:
                length = struct.unpack(f"{endian}L", _read_exact(stream, 4))[0]
            else:
                length = struct.unpack(f"{endian}H", head[6:8])[0]
        else:
            length = struct.unpack(f"{endian}L", head[4:8])[0]
        if length == 0xFFFFFFFF:
            return  # a sequence of undefined length: read only when the file is opened
        if not stream.skip(length):
            raise DicomRejected("truncated file: an element runs past the end of the data")


def _check_encapsulated(ds: Dataset, ts: str, frames: int, fragments: int,
                        offsets: int) -> None:
    """Refuse a NumberOfFrames that the fragments and offset tables cannot hold."""
    if fragments == 0:
        raise DicomRejected("encapsulated pixel data without fragments")
    extended = _extended_offsets(ds)
    if extended is not None and extended != frames:
        raise DicomRejected(f"NumberOfFrames {frames} does not match the extended offset "
                            f"table ({extended} frames)")
    if offsets and offsets != frames:
        raise DicomRejected(f"NumberOfFrames {frames} does not match the basic offset table "
                            f"({offsets} frames)")
    if ts in MPEGTransferSyntaxes:
        return
    if fragments < frames:
        raise DicomRejected(f"NumberOfFrames {frames} but only {fragments} pixel data "
                            f"fragment{'s' if fragments != 1 else ''} (a fragment holds "
                            "data of one frame at most)")


def _extended_offsets(ds: Dataset) -> int | None:
    """Return the number of frames the Extended Offset Table lists, or None without one."""
    if _EXTENDED_OFFSET_TABLE not in ds:
        return None
    # Its declared length is enough (and a long table was skipped, not read).
    elem = ds.get_item(_EXTENDED_OFFSET_TABLE, keep_deferred=True)
    length = getattr(elem, "length", None)
    if length is None:
        length = len(elem.value or b"")
    if length == 0xFFFFFFFF or length % 8:
        raise DicomRejected("corrupt extended offset table")
    return length // 8


def expected_native_length(ds: Dataset, tag: int = 0x7FE00010) -> int | None:
    """Return the byte length of native (uncompressed) pixel data, or None if unknown."""
    meta = getattr(ds, "file_meta", None) or Dataset()
    ts = str(meta.get("TransferSyntaxUID", "") or "").strip().rstrip("\x00")
    if tag == 0x7FE00010 and ts and is_compressed(ts):
        return None
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        bits = _FLOAT_BITS.get(tag) or int(ds.BitsAllocated)
        spp = int(ds.get("SamplesPerPixel", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        return None
    frames = declared_frames(ds)
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip()
    if photometric == "YBR_FULL_422" and spp == 3:
        return rows * cols * frames * 2 * bits // 8
    return (rows * cols * frames * spp * bits + 7) // 8


def is_compressed(ts: str) -> bool:
    """Tell whether a transfer syntax UID encapsulates its pixel data (unknown: assume so)."""
    try:
        return bool(UID(ts).is_compressed)
    except ValueError:  # a private or damaged UID: not a transfer syntax pydicom knows
        return True


def _read_exact(stream: Stream, n: int) -> bytes:
    """Read exactly n bytes or reject the file as truncated."""
    data = stream.read(n)
    if len(data) != n:
        raise DicomRejected("truncated file")
    return data
