"""Read the header of a DICOM instance and check that its pixel data is complete."""

from __future__ import annotations

import datetime as dt
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from .errors import DicomRejected

T = TypeVar("T")

PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel, Float Pixel, Double Float Pixel Data
_MAX_FRAGMENTS = 1_000_000
_PIXEL_VRS = (b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN")
# First groups a preamble-less dataset may plausibly start with (meta, identifying).
_PLAUSIBLE_FIRST_GROUPS = (0x0002, 0x0008)


@dataclass(frozen=True, slots=True)
class InstanceHeader:
    """Hold the header fields of one DICOM instance that the portal uses."""

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    patient_name: str = ""
    patient_id: str = ""
    patient_sex: str = ""
    patient_birth_date: dt.date | None = None
    accession_number: str = ""
    study_date: dt.date | None = None
    study_time: dt.time | None = None
    study_description: str = ""
    series_description: str = ""
    series_number: int | None = None
    modality: str = ""
    body_part: str = ""
    institution: str = ""
    referring_physician: str = ""
    instance_number: int | None = None
    slice_location: float | None = None
    image_position: tuple[float, float, float] | None = None
    image_orientation: tuple[float, ...] | None = None
    rows: int | None = None
    columns: int | None = None
    frames: int = 1
    bits_allocated: int | None = None
    samples_per_pixel: int | None = None
    transfer_syntax_uid: str = ""
    photometric_interpretation: str = ""
    burned_in_annotation: bool | None = None
    has_overlay_data: bool = False  # Overlay Data (60xx,3000): pixels need a look too
    window_center: float | None = None
    window_width: float | None = None
    has_pixel_data: bool = False
    file_size: int = 0


def read_header(path: str | os.PathLike[str]) -> InstanceHeader:
    """Read an instance header, rejecting non-DICOM, truncated or UID-less files."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as fp:
            ds = _read_dataset(fp)
            has_pixels = _check_pixel_data(fp, ds, size)
        return header_from_dataset(ds, has_pixel_data=has_pixels, file_size=size)
    except DicomRejected:
        raise
    except OSError as exc:
        raise DicomRejected(f"cannot read file: {exc.strerror or exc}") from exc
    except Exception as exc:  # noqa: BLE001 - a damaged file can break pydicom in many ways
        # (unknown VR, odd value lengths, a corrupt deflate stream, a bogus transfer
        # syntax UID...): whatever the failure, it is this file's, never the batch's.
        raise DicomRejected(f"unreadable DICOM file ({type(exc).__name__})") from exc


def header_from_dataset(
    ds: Dataset, *, has_pixel_data: bool = False, file_size: int = 0
) -> InstanceHeader:
    """Build an InstanceHeader from a parsed dataset, requiring the three instance UIDs."""
    meta = getattr(ds, "file_meta", None) or Dataset()
    uids = {}
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        value = _text(ds, keyword)
        if not value:
            raise DicomRejected(f"missing {keyword}")
        uids[keyword] = value
    sop_class = _text(ds, "SOPClassUID") or _text(meta, "MediaStorageSOPClassUID")
    if not sop_class:
        raise DicomRejected("missing SOPClassUID")
    position = _floats(ds, "ImagePositionPatient")
    burned = _text(ds, "BurnedInAnnotation").upper()
    return InstanceHeader(
        study_uid=uids["StudyInstanceUID"],
        series_uid=uids["SeriesInstanceUID"],
        sop_uid=uids["SOPInstanceUID"],
        sop_class_uid=sop_class,
        patient_name=_text(ds, "PatientName"),
        patient_id=_text(ds, "PatientID"),
        patient_sex=_text(ds, "PatientSex"),
        patient_birth_date=parse_da(_text(ds, "PatientBirthDate")),
        accession_number=_text(ds, "AccessionNumber"),
        study_date=parse_da(_text(ds, "StudyDate")),
        study_time=parse_tm(_text(ds, "StudyTime")),
        study_description=_text(ds, "StudyDescription"),
        series_description=_text(ds, "SeriesDescription"),
        series_number=_number(ds, "SeriesNumber", int),
        modality=_text(ds, "Modality"),
        body_part=_text(ds, "BodyPartExamined"),
        institution=_text(ds, "InstitutionName"),
        referring_physician=_text(ds, "ReferringPhysicianName"),
        instance_number=_number(ds, "InstanceNumber", int),
        slice_location=_number(ds, "SliceLocation", float),
        image_position=(position[0], position[1], position[2])
        if position and len(position) == 3
        else None,
        image_orientation=_floats(ds, "ImageOrientationPatient"),
        rows=_number(ds, "Rows", int),
        columns=_number(ds, "Columns", int),
        frames=max(1, _number(ds, "NumberOfFrames", int) or 1),
        bits_allocated=_number(ds, "BitsAllocated", int),
        samples_per_pixel=_number(ds, "SamplesPerPixel", int),
        transfer_syntax_uid=_text(meta, "TransferSyntaxUID"),
        photometric_interpretation=_text(ds, "PhotometricInterpretation"),
        burned_in_annotation={"YES": True, "NO": False}.get(burned),
        has_overlay_data=any(0x60003000 + (g << 16) in ds for g in range(0, 0x20, 2)),
        window_center=_number(ds, "WindowCenter", float),
        window_width=_number(ds, "WindowWidth", float),
        has_pixel_data=has_pixel_data,
        file_size=file_size,
    )


def parse_da(value: str) -> dt.date | None:
    """Parse a DICOM DA string (YYYYMMDD, or the old YYYY.MM.DD), or return None."""
    value = value.strip().replace(".", "")
    if len(value) != 8 or not value.isdigit():
        return None
    try:
        return dt.date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        return None


def parse_tm(value: str) -> dt.time | None:
    """Parse a DICOM TM string (HH[MM[SS[.ffffff]]], old HH:MM:SS too), or return None."""
    value = value.strip().replace(":", "")
    main, _, frac = value.partition(".")
    if not main.isdigit() or len(main) not in (2, 4, 6) or (frac and not frac.isdigit()):
        return None
    parts = [int(main[i : i + 2]) for i in range(0, len(main), 2)] + [0, 0]
    micro = int(frac[:6].ljust(6, "0")) if frac else 0
    try:
        return dt.time(parts[0], parts[1], min(parts[2], 59), micro)
    except ValueError:
        return None


def _read_dataset(fp: BinaryIO) -> Dataset:
    """Parse the header up to the pixel data, leaving fp at the pixel data element."""
    head = fp.read(132)
    has_preamble = len(head) == 132 and head[128:132] == b"DICM"
    if not has_preamble and not _plausible_raw_dataset(head):
        raise DicomRejected("not a DICOM file")
    fp.seek(0)
    try:
        # force=True only for a preamble-less stream whose first tag is plausible; the UID
        # checks in header_from_dataset then weed out anything that merely happened to parse.
        ds = dcmread(fp, stop_before_pixels=True, force=not has_preamble)
    except InvalidDicomError as exc:
        raise DicomRejected("not a DICOM file") from exc
    except EOFError as exc:
        raise DicomRejected("truncated file") from exc
    except (ValueError, KeyError, struct.error, TypeError, OverflowError,
            NotImplementedError, BytesLengthException, zlib.error) as exc:
        raise DicomRejected(f"unreadable DICOM header ({type(exc).__name__})") from exc
    if not has_preamble and not (len(ds) and _text(ds, "SOPClassUID")):
        raise DicomRejected("not a DICOM file")
    return ds


def _plausible_raw_dataset(head: bytes) -> bool:
    """Tell whether bytes could start a dataset written without preamble."""
    if head[:4] == b"DICM":
        return True
    if len(head) < 8:
        return False
    little, big = struct.unpack("<H", head[:2])[0], struct.unpack(">H", head[:2])[0]
    return little in _PLAUSIBLE_FIRST_GROUPS or big in _PLAUSIBLE_FIRST_GROUPS


def _check_pixel_data(fp: BinaryIO, ds: Dataset, file_size: int) -> bool:
    """Check that the pixel data element starting at fp is complete; return whether present.

    dcmread(stop_before_pixels=True) leaves fp at the pixel data element, so the check
    costs a few small reads and seeks: for a defined length the element must fit in the
    file (and hold a whole native image); for encapsulated data the fragment items are
    walked by seeking to the sequence delimiter. This catches truncation without
    reading pixel values, which a plain header read would not notice.
    """
    meta = getattr(ds, "file_meta", None) or Dataset()
    if _text(meta, "TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
        return "Rows" in ds  # offsets refer to the inflated stream; cannot check cheaply
    _, little = ds.original_encoding
    endian = "<" if little in (True, None) else ">"
    tag_bytes = fp.read(4)
    if len(tag_bytes) < 4:
        if "Rows" in ds:
            raise DicomRejected("truncated file")
        return False
    group, elem = struct.unpack(f"{endian}HH", tag_bytes)
    tag = group << 16 | elem
    if tag not in PIXEL_TAGS:
        raise DicomRejected("unreadable DICOM header (unexpected element before pixel data)")
    # Sniff the VR rather than trust the transfer syntax: some writers put an implicit VR
    # dataset behind an explicit VR meta header, and pydicom reads those too.
    peek = _read_exact(fp, 4)
    if peek[:2] in _PIXEL_VRS:
        length = struct.unpack(f"{endian}L", _read_exact(fp, 4))[0]
    else:
        length = struct.unpack(f"{endian}L", peek)[0]
    if length == 0xFFFFFFFF:
        _walk_fragments(fp, file_size)
        return True
    if fp.tell() + length > file_size:
        raise DicomRejected("truncated file")
    expected = expected_native_length(ds)
    if tag == 0x7FE00010 and expected is not None and length < expected:
        raise DicomRejected("truncated pixel data")
    return True


def _walk_fragments(fp: BinaryIO, file_size: int) -> None:
    """Seek through encapsulated fragment items up to the delimiter; reject on truncation."""
    for _ in range(_MAX_FRAGMENTS):
        tag, length = struct.unpack("<LL", _read_exact(fp, 8))
        if tag == 0xE0DDFFFE:  # Sequence Delimitation Item (FFFE,E0DD) read as "<L" of "<HH"
            return
        if tag != 0xE000FFFE:
            raise DicomRejected("corrupt encapsulated pixel data")
        if length == 0xFFFFFFFF or fp.tell() + length > file_size:
            raise DicomRejected("truncated file")
        fp.seek(length, os.SEEK_CUR)
    raise DicomRejected("corrupt encapsulated pixel data (too many fragments)")


def expected_native_length(ds: Dataset) -> int | None:
    """Return the byte length of native (uncompressed) pixel data, or None if unknown."""
    meta = getattr(ds, "file_meta", None) or Dataset()
    ts = _text(meta, "TransferSyntaxUID")
    if ts and _is_compressed(ts):
        return None
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        bits = int(ds.BitsAllocated)
        spp = int(ds.get("SamplesPerPixel", 1) or 1)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        return None
    if _text(ds, "PhotometricInterpretation") == "YBR_FULL_422" and spp == 3:
        return rows * cols * frames * 2 * bits // 8
    return (rows * cols * frames * spp * bits + 7) // 8


def _is_compressed(ts: str) -> bool:
    """Tell whether a transfer syntax UID encapsulates its pixel data (unknown: assume so)."""
    try:
        return bool(UID(ts).is_compressed)
    except ValueError:  # a private or damaged UID: not a transfer syntax pydicom knows
        return True


def _read_exact(fp: BinaryIO, n: int) -> bytes:
    """Read exactly n bytes or reject the file as truncated."""
    data = fp.read(n)
    if len(data) != n:
        raise DicomRejected("truncated file")
    return data


def _safe(getter: Callable[[], T]) -> T | None:
    """Return getter(), or None when the stored value cannot be converted."""
    try:
        return getter()
    except (AttributeError, TypeError, ValueError, KeyError, IndexError, OverflowError):
        return None


def _raw(ds: Dataset, keyword: str) -> Any:
    """Return the value of an element, or None when absent or unreadable."""
    return _safe(lambda: ds.get(keyword))


def _text(ds: Dataset, keyword: str) -> str:
    """Return an element as a stripped string (first value if multi-valued)."""
    value = _raw(ds, keyword)
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else ""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip().strip("\x00").strip()


def _number(ds: Dataset, keyword: str, kind: Callable[[Any], T]) -> T | None:
    """Return the first value of a numeric element converted by kind, or None."""
    value = _raw(ds, keyword)
    if value is None or value == "":
        return None
    if type(value).__name__ == "MultiValue" or isinstance(value, list | tuple):
        if not len(value):
            return None
        value = value[0]
    return _safe(lambda: kind(float(value)) if kind is int else kind(value))


def _floats(ds: Dataset, keyword: str) -> tuple[float, ...] | None:
    """Return a multi-valued decimal element as a tuple of floats, or None."""
    value = _raw(ds, keyword)
    if value is None or value == "":
        return None
    values = value if type(value).__name__ == "MultiValue" else [value]
    return _safe(lambda: tuple(float(v) for v in values)) or None
