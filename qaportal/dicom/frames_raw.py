"""One frame's pixel bytes out of a stored DICOM file, for WADO-RS frame retrieval.

Three ways out: a native frame sliced from the Pixel Data (little endian, as Explicit VR
Little Endian carries it), a compressed frame exactly as stored (its fragments joined, no
decoding), or a compressed frame decoded to native little endian bytes (pydicom and the
pylibjpeg plugins; colour comes out interleaved, YBR converted to RGB as pydicom does).
Only the header and the requested frame are read, never the whole file, except for a
deflated file (its stream cannot be sought) and 1-bit images, which are small.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from .errors import DicomRejected
from .render import MAX_FRAME_PIXELS, check_decodable_size, load_frame

NATIVE_SYNTAXES = frozenset({ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian,
                             DeflatedExplicitVRLittleEndian})
EXPLICIT_LE = str(ExplicitVRLittleEndian)
_PIXEL_TAGS = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}
_UNDEFINED = 0xFFFFFFFF

# The media types of compressed frames (PS3.18 Table 8.7.3-5; older names second).
COMPRESSED_MEDIA_TYPES: dict[str, tuple[str, ...]] = {
    "1.2.840.10008.1.2.4.50": ("image/jpeg",),
    "1.2.840.10008.1.2.4.51": ("image/jpeg",),
    "1.2.840.10008.1.2.4.57": ("image/jpeg",),
    "1.2.840.10008.1.2.4.70": ("image/jpeg",),
    "1.2.840.10008.1.2.4.80": ("image/jls", "image/x-jls"),
    "1.2.840.10008.1.2.4.81": ("image/jls", "image/x-jls"),
    "1.2.840.10008.1.2.4.90": ("image/jp2",),
    "1.2.840.10008.1.2.4.91": ("image/jp2",),
    "1.2.840.10008.1.2.4.92": ("image/jpx",),
    "1.2.840.10008.1.2.4.93": ("image/jpx",),
    "1.2.840.10008.1.2.4.201": ("image/jphc",),
    "1.2.840.10008.1.2.4.202": ("image/jphc",),
    "1.2.840.10008.1.2.4.203": ("image/jphc",),
    "1.2.840.10008.1.2.5": ("image/dicom-rle", "image/x-dicom-rle"),
}


class FrameReader:
    """A stored file opened for its frames: the header parsed, the Pixel Data located."""

    def __init__(self, path: str | Path, max_pixels: int = MAX_FRAME_PIXELS) -> None:
        self.path = Path(path)
        self.max_pixels = max_pixels
        self._fp = open(self.path, "rb")  # noqa: SIM115 (closed by close()/__exit__)
        try:
            self._locate()
        except BaseException:
            self._fp.close()
            raise

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._fp.close()

    def _locate(self) -> None:
        try:
            self.header: Dataset = dcmread(self._fp, stop_before_pixels=True)
        except Exception as exc:  # pydicom raises many types on a damaged header
            raise DicomRejected("not a readable DICOM file") from exc
        meta = getattr(self.header, "file_meta", None)
        self.transfer_syntax = str(getattr(meta, "TransferSyntaxUID", "") or "")
        if not self.transfer_syntax:
            raise DicomRejected("no transfer syntax in file meta")
        check_decodable_size(self.header, self.max_pixels)
        ds = self.header
        self.rows, self.columns = int(ds.Rows), int(ds.Columns)
        self.samples = int(ds.get("SamplesPerPixel", 1) or 1)
        self.bits = int(ds.get("BitsAllocated", 8) or 8)
        try:
            self.frames = max(1, int(ds.get("NumberOfFrames", 1) or 1))
        except (TypeError, ValueError):
            self.frames = 1
        self.native = self.transfer_syntax in NATIVE_SYNTAXES
        self._value_at: int | None = None
        self._length = 0
        if self.transfer_syntax != DeflatedExplicitVRLittleEndian:
            self._read_element_header()

    def _read_element_header(self) -> None:
        """Read the Pixel Data element header at the position the header parse stopped."""
        little = self.transfer_syntax != ExplicitVRBigEndian
        implicit = self.transfer_syntax == ImplicitVRLittleEndian
        end = "<" if little else ">"
        head = self._fp.read(8)
        if len(head) < 8:
            raise DicomRejected("no pixel data in file")
        group, elem = struct.unpack(end + "HH", head[:4])
        if (group, elem) not in _PIXEL_TAGS:
            raise DicomRejected("no pixel data in file")
        if implicit:
            (length,) = struct.unpack(end + "I", head[4:8])
        else:
            vr = head[4:6]
            if vr in (b"OB", b"OW", b"OF", b"OD", b"UN", b"OL", b"OV"):
                more = self._fp.read(4)
                if len(more) < 4:
                    raise DicomRejected("no pixel data in file")
                (length,) = struct.unpack(end + "I", more)
            else:
                (length,) = struct.unpack(end + "H", head[6:8])
        self._value_at = self._fp.tell()
        self._length = length
        if (length == _UNDEFINED) == self.native:
            raise DicomRejected("pixel data encoding does not match the transfer syntax")

    @property
    def frame_bytes(self) -> int:
        """Return the size of one native frame in bytes (bits rounded up for 1-bit images)."""
        return (self.rows * self.columns * self.samples * self.bits + 7) // 8

    def check_index(self, index: int) -> None:
        """Refuse a 0-based frame index the file does not hold."""
        if not 0 <= index < self.frames:
            raise DicomRejected(f"frame {index + 1} out of range (1-{self.frames})")

    def stored(self, index: int) -> bytes:
        """Return a frame as stored: encapsulated bytes for a compressed syntax, else native."""
        self.check_index(index)
        if self.native:
            return self.uncompressed(index)
        ds = self.header
        extended = None
        if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
            extended = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
        self._fp.seek(self._value_at or 0)
        try:
            return get_frame(self._fp, index, number_of_frames=self.frames,
                             extended_offsets=extended)
        except Exception as exc:  # malformed fragments or offset tables
            raise DicomRejected("cannot read the encapsulated frame") from exc

    def uncompressed(self, index: int) -> bytes:
        """Return a frame as native little endian bytes (decoding a compressed one)."""
        self.check_index(index)
        if not self.native:
            _, arr = load_frame(self.path, index, self.max_pixels)
            return _little_endian(arr)
        if self._value_at is None or self.bits == 1:
            return self._from_whole_file(index)
        size = self.frame_bytes
        if self._length < size * (index + 1):
            raise DicomRejected("pixel data shorter than the header declares")
        self._fp.seek(self._value_at + size * index)
        data = self._fp.read(size)
        if len(data) < size:
            raise DicomRejected("pixel data shorter than the header declares")
        if self.transfer_syntax == ExplicitVRBigEndian and self.bits > 8:
            data = np.frombuffer(data, dtype=f">u{self.bits // 8}").astype(
                f"<u{self.bits // 8}").tobytes()
        return data

    def _from_whole_file(self, index: int) -> bytes:
        """Slice a frame out of a fully parsed file (deflated files, 1-bit images)."""
        ds = dcmread(self.path)
        element = next((ds[t] for t in (0x7FE00010, 0x7FE00008, 0x7FE00009) if t in ds), None)
        if element is None or element.value is None:
            raise DicomRejected("no pixel data in file")
        data = bytes(element.value)
        if self.bits == 1:
            bits = self.rows * self.columns * self.samples
            unpacked = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")
            chunk = unpacked[bits * index : bits * (index + 1)]
            if chunk.size < bits:
                raise DicomRejected("pixel data shorter than the header declares")
            return np.packbits(chunk, bitorder="little").tobytes()
        size = self.frame_bytes
        chunk = data[size * index : size * (index + 1)]
        if len(chunk) < size:
            raise DicomRejected("pixel data shorter than the header declares")
        if not ds.is_little_endian and self.bits > 8:
            chunk = np.frombuffer(chunk, dtype=f">u{self.bits // 8}").astype(
                f"<u{self.bits // 8}").tobytes()
        return chunk


def _little_endian(arr: np.ndarray) -> bytes:
    """Return an array's bytes in little endian order, C-contiguous (samples interleaved)."""
    arr = np.ascontiguousarray(arr)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return arr.tobytes()
