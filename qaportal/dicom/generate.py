"""Build realistic synthetic studies from one real slice (for demos and benchmarks)."""

from __future__ import annotations

import copy
import datetime as dt
import os
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

BASES = ("693_UNCR.dcm", "CT_small.dcm")  # 693_UNCR (512² CT) needs the pydicom-data package


def base_slice_path() -> Path:
    """Return the best available real CT slice to build series from."""
    for name in BASES:
        path = get_testdata_file(name)
        if path:
            return Path(str(path))
    raise FileNotFoundError("no base CT slice available")


def generate_ct_series(
    dest_dir: str | os.PathLike[str],
    slices: int = 500,
    base: str | os.PathLike[str] | None = None,
    patient: tuple[str, str] = ("DEMO^PATIENT", "DEMO0001"),
    study_uid: str | None = None,
    spacing: float = 1.0,
    series_description: str = "SYNTHETIC AXIAL",
) -> list[Path]:
    """Write an uncompressed CT series of `slices` slices; return the file paths in order.

    Every slice gets fresh SOP Instance UID, InstanceNumber, ImagePositionPatient and
    SliceLocation; pixels are rolled and offset a little so that slices differ.
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    template = dcmread(base or base_slice_path())
    if template.file_meta.TransferSyntaxUID.is_compressed:
        template.decompress()
    pixels = template.pixel_array
    _prepare_template(template, patient, study_uid or generate_uid(), series_description)
    x, y, z0 = (float(v) for v in template.get("ImagePositionPatient", [0.0, 0.0, 0.0]))
    dtype = pixels.dtype
    info = np.iinfo(dtype) if dtype.kind in "iu" else None
    paths: list[Path] = []
    for i in range(slices):
        ds = copy.copy(template)  # shallow copy: shared elements are not modified below
        ds.file_meta = copy.deepcopy(template.file_meta)
        sop_uid = generate_uid()
        ds.SOPInstanceUID = sop_uid
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.InstanceNumber = i + 1
        z = z0 + i * spacing
        ds.ImagePositionPatient = [x, y, round(z, 3)]
        ds.SliceLocation = round(z, 3)
        frame = np.roll(pixels, shift=(i % 16) - 8, axis=0)
        if info is not None:
            offset = (i % 7) - 3
            frame = np.clip(frame.astype(np.int32) + offset, info.min, info.max).astype(dtype)
        ds.PixelData = frame.tobytes()
        path = dest / f"{i + 1:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _prepare_template(
    ds: Dataset, patient: tuple[str, str], study_uid: str, series_description: str
) -> None:
    """Give the template study-level identity shared by every slice."""
    for tag in [t for t in ds.keys() if t.is_private]:
        del ds[tag]
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PatientName, ds.PatientID = patient
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.SeriesNumber = 1
    ds.SeriesDescription = series_description
    ds.Modality = "CT"
    today = dt.date.today().strftime("%Y%m%d")
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = today
    ds.ImageOrientationPatient = ds.get("ImageOrientationPatient", [1, 0, 0, 0, 1, 0])
