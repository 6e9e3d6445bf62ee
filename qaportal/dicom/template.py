"""A real sample image as a template: identity swapped in its bytes, never re-parsed per copy.

The sample is read once; its UIDs, patient name, ID, accession and dates are replaced by
fixed-length placeholders. `fill` then writes a copy for one study by replacing those bytes,
so a file for each of hundreds of demo studies costs a byte replace, not a parse and a save.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.multival import MultiValue

# Placeholders: each as long as the value that replaces it (UIDs are "2.25." + 39 digits).
P_STUDY = "2.25." + "1" * 39
P_SERIES = "2.25." + "2" * 39
P_SOP = "2.25." + "3" * 39
P_FRAME = "2.25." + "4" * 39
P_NAME = "ZZDEMO^ZZPLACEHOLD"
P_PID = "ZZPID00000"
P_ACC = "ZZACC00000"
P_DATE = "19000101"

# Identity and provenance the copies must not inherit from the sample.
_DROPPED = ("StudyTime", "SeriesTime", "AcquisitionDate", "AcquisitionTime",
            "AcquisitionDateTime", "InstitutionName", "InstitutionAddress",
            "ReferringPhysicianName", "OperatorsName", "PerformingPhysicianName",
            "StationName", "OtherPatientIDs", "StudyID", "RequestAttributesSequence",
            "ReferencedStudySequence", "ReferencedPatientSequence",
            "ReferencedImageSequence", "SourceImageSequence")


@dataclass(frozen=True)
class SampleTemplate:
    """A sample's bytes with placeholders, and the instance fields it yields."""

    data: bytes
    sop_class_uid: str
    rows: int | None
    columns: int | None
    frames: int
    transfer_syntax_uid: str
    photometric: str
    window_center: float | None
    window_width: float | None


def fixed_length_uid() -> str:
    """Return a UUID-derived UID of fixed length (44 characters), as long as a placeholder."""
    return f"2.25.{uuid.uuid4().int | 1 << 127}"  # top bit set: always 39 digits


def sample_template(path: Path, *, modality: str, body_part: str, description: str,
                    series_description: str) -> SampleTemplate:
    """Read a sample once; return its bytes with placeholders where a study's identity goes."""
    ds = dcmread(path)
    for tag in [t for t in ds.keys() if t.is_private]:
        del ds[tag]
    ds.StudyInstanceUID, ds.SeriesInstanceUID = P_STUDY, P_SERIES
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = P_SOP
    ds.FrameOfReferenceUID = P_FRAME
    ds.PatientName, ds.PatientID, ds.AccessionNumber = P_NAME, P_PID, P_ACC
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = P_DATE
    ds.PatientBirthDate = ds.PatientSex = ""  # the study row holds the sex
    for keyword in _DROPPED:
        if keyword in ds:
            delattr(ds, keyword)
    ds.Modality, ds.BodyPartExamined = modality, body_part
    ds.StudyDescription, ds.SeriesDescription = description, series_description
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)

    def first(name: str) -> float | None:
        value = ds.get(name)
        if value is None or value == "":
            return None
        return float(value[0] if isinstance(value, MultiValue) else value)

    return SampleTemplate(
        data=out.getvalue(), sop_class_uid=str(ds.SOPClassUID), rows=ds.get("Rows"),
        columns=ds.get("Columns"), frames=int(ds.get("NumberOfFrames") or 1),
        transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
        photometric=str(ds.get("PhotometricInterpretation", "")),
        window_center=first("WindowCenter"), window_width=first("WindowWidth"))


def _fixed(value: str, placeholder: str) -> bytes:
    """Return value as bytes of the placeholder's length (DICOM pads with a space)."""
    if len(value) > len(placeholder):
        raise ValueError("identity value longer than its placeholder")
    return value.ljust(len(placeholder)).encode()


def fill(t: SampleTemplate, *, study_uid: str, series_uid: str, sop_uid: str, frame_uid: str,
         patient_name: str, patient_id: str, accession: str, date: str | None) -> bytes:
    """Return a copy of the template with one study's identity (UIDs from fixed_length_uid)."""
    return (t.data.replace(P_STUDY.encode(), study_uid.encode())
            .replace(P_SERIES.encode(), series_uid.encode())
            .replace(P_SOP.encode(), sop_uid.encode())
            .replace(P_FRAME.encode(), frame_uid.encode())
            .replace(P_NAME.encode(), _fixed(patient_name, P_NAME))
            .replace(P_PID.encode(), _fixed(patient_id, P_PID))
            .replace(P_ACC.encode(), _fixed(accession, P_ACC))
            .replace(P_DATE.encode(), (date or P_DATE).encode()))
