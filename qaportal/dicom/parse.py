"""Read the header of a DICOM instance and check that its pixel data is complete."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileDataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.filereader import (  # _read_file_meta_info: private, what dcmread uses (3.x)
    _read_file_meta_info,
    read_dataset,
    read_preamble,
)
from pydicom.uid import DeflatedExplicitVRLittleEndian

from .errors import DicomRejected
from .pixelcheck import PIXEL_TAGS, check_pixel_data, has_overlay_data
from .streams import BoundedReader, InflatingReader

T = TypeVar("T")

# Header values longer than this are skipped, not read (a 1 GB private element costs no
# memory); the header fields the portal reads are all far shorter.
_DEFER_BYTES = 64 * 1024
# First groups a preamble-less dataset may plausibly start with (meta, identifying).
_PLAUSIBLE_FIRST_GROUPS = (0x0002, 0x0008)


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Bound what one file may make the parser do (settings MAX_FRAMES_PER_INSTANCE and
    MAX_INFLATED_BYTES)."""

    max_frames: int = 20_000
    max_inflated_bytes: int = 256 * 1024**2


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


def read_header(
    path: str | os.PathLike[str], limits: ParseLimits | None = None,
    head: bytes | None = None,
) -> InstanceHeader:
    """Read an instance header, rejecting non-DICOM, truncated, inconsistent or UID-less files.

    A plain native little-endian file is read by quick_header without pydicom; whatever
    that fast path is not sure of (None) is read here, by pydicom, as before. head: the
    file's first bytes, when the caller has them (quick_header starts from them).
    """
    from .quick_header import quick_header  # it builds on this module's types

    limits = limits or ParseLimits()
    return quick_header(path, limits, head) or read_header_pydicom(path, limits)


def read_header_pydicom(
    path: str | os.PathLike[str], limits: ParseLimits | None = None
) -> InstanceHeader:
    """Read an instance header with pydicom (any file; read_header's slow path)."""
    path = Path(path)
    limits = limits or ParseLimits()
    try:
        size = path.stat().st_size
        with path.open("rb") as fp:
            ds, stream, guard = _read_dataset(fp, size, limits)
            ts = _text(getattr(ds, "file_meta", None) or Dataset(), "TransferSyntaxUID")
            # Before anything looks at NumberOfFrames: it must fit the pixel data present.
            has_pixels = check_pixel_data(stream, ds, ts, limits.max_frames)
            if guard.overrun or stream.overrun:
                raise DicomRejected("truncated file: an element runs past the end of the data")
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
        has_overlay_data=has_overlay_data(ds),
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


def _read_dataset(
    fp: BinaryIO, size: int, limits: ParseLimits
) -> tuple[Dataset, BoundedReader | InflatingReader, BoundedReader]:
    """Parse the header up to the pixel data; return it, the stream left there, the guard."""
    head = fp.read(132)
    has_preamble = len(head) == 132 and head[128:132] == b"DICM"
    if not has_preamble and not _plausible_raw_dataset(head):
        raise DicomRejected("not a DICOM file")
    fp.seek(0)
    guard = BoundedReader(fp, size)
    try:
        # The meta group first: pydicom would inflate a deflated data set in one call.
        preamble = read_preamble(guard, not has_preamble)
        guard.overrun = False  # a short preamble-less file: judged by the parse below
        meta = _read_file_meta_info(guard)
        if meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
            stream = InflatingReader(fp, limits.max_inflated_bytes)
            return _read_deflated(stream, meta, preamble, fp), stream, guard
        guard.seek(0)
        # force=True only for a preamble-less stream whose first tag is plausible; the UID
        # checks in header_from_dataset then weed out anything that merely happened to parse.
        ds = dcmread(guard, stop_before_pixels=True, force=not has_preamble,
                     defer_size=_DEFER_BYTES)
    except InvalidDicomError as exc:
        raise DicomRejected("not a DICOM file") from exc
    except EOFError as exc:
        raise DicomRejected("truncated file") from exc
    except (ValueError, KeyError, struct.error, TypeError, OverflowError,
            NotImplementedError, BytesLengthException, zlib.error) as exc:
        raise DicomRejected(f"unreadable DICOM header ({type(exc).__name__})") from exc
    if not has_preamble and not (len(ds) and _text(ds, "SOPClassUID")):
        raise DicomRejected("not a DICOM file")
    if _short_value(ds):
        raise DicomRejected("truncated file: an element runs past the end of the data")
    return ds, guard, guard


def _read_deflated(stream: InflatingReader, meta: Dataset, preamble: bytes | None,
                   fp: BinaryIO) -> Dataset:
    """Parse a deflated data set through the bounded inflater (pydicom would inflate it all)."""
    dataset = read_dataset(stream, is_implicit_VR=False, is_little_endian=True,
                           stop_when=lambda tag, vr, length: tag in PIXEL_TAGS,
                           defer_size=_DEFER_BYTES)
    ds = FileDataset(getattr(fp, "name", "") or "", dataset, preamble, meta,
                     is_implicit_VR=False, is_little_endian=True)
    ds.set_original_encoding(False, True, dataset.original_character_set)
    if _short_value(ds):
        raise DicomRejected("truncated file: an element runs past the end of the data")
    return ds


def _short_value(ds: Dataset) -> bool:
    """Tell whether an element got fewer bytes than it declared (the data ended first)."""
    for tag in list(ds.keys()):
        # keep_deferred: reading a deferred value would move the stream we parse from.
        elem = ds.get_item(tag, keep_deferred=True)
        if isinstance(elem, RawDataElement):
            if (elem.length != 0xFFFFFFFF and elem.value is not None
                    and len(elem.value) < elem.length):
                return True
        elif elem.VR == "SQ" and any(_short_value(item) for item in elem.value or []):
            return True
    return False


def _plausible_raw_dataset(head: bytes) -> bool:
    """Tell whether bytes could start a dataset written without preamble."""
    if head[:4] == b"DICM":
        return True
    if len(head) < 8:
        return False
    little, big = struct.unpack("<H", head[:2])[0], struct.unpack(">H", head[:2])[0]
    return little in _PLAUSIBLE_FIRST_GROUPS or big in _PLAUSIBLE_FIRST_GROUPS


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


_UID_TEXT = re.compile(r"[0-9.]{1,64}")


def meta_sop_uids(path: str | os.PathLike[str] | None) -> tuple[str, str]:
    """Return the SOP Class and Instance UIDs of a file's meta group, if readable.

    Best effort, to name a refused file: only the file meta group of the first 8 KiB;
    anything odd gives empty strings.
    """
    if path is None:
        return "", ""
    try:
        with open(path, "rb") as fp:
            head = fp.read(8192)
        if head[128:132] != b"DICM":
            return "", ""
        meta = _read_file_meta_info(io.BytesIO(head[132:]))
        found = (str(meta.get("MediaStorageSOPClassUID", "") or ""),
                 str(meta.get("MediaStorageSOPInstanceUID", "") or ""))
    except Exception:  # noqa: BLE001 - a refused file may break the reader in many ways
        return "", ""
    sop_class, sop_uid = (v.strip("\x00 ") for v in found)
    return (sop_class if _UID_TEXT.fullmatch(sop_class) else "",
            sop_uid if _UID_TEXT.fullmatch(sop_uid) else "")


def header_dataset(data: bytes) -> Dataset:
    """Return the header of a stored file (one the ingest accepted), without its pixel data,
    as a pydicom Dataset: for building objects that copy its patient and study values."""
    return dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
