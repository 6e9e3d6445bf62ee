"""De-identified copies of a stored study (PS3.15 Annex E basic profile, with options)."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from flask import current_app
from pydicom import dcmread

from qaportal.dicom import DeidContext, DeidOption, deidentify_dataset
from qaportal.models import Study
from qaportal.studies.storage import image_store

DEID_ZIP_PREFIX = "deid-"


def deid_options(*, retain_dates: bool, retain_patient_characteristics: bool,
                 retain_device_identity: bool) -> frozenset[DeidOption]:
    """Return the profile options chosen."""
    chosen = set()
    if retain_dates:
        chosen.add(DeidOption.RETAIN_MODIFIED_DATES)
    if retain_patient_characteristics:
        chosen.add(DeidOption.RETAIN_PATIENT_CHARACTERISTICS)
    if retain_device_identity:
        chosen.add(DeidOption.RETAIN_DEVICE_IDENTITY)
    return frozenset(chosen)


def study_context(study: Study, options: frozenset[DeidOption]) -> DeidContext:
    """Return the de-identification context of a study: its key gives stable UIDs and dates."""
    return DeidContext(secret=bytes.fromhex(study.deid_key), pseudonym=study.pseudonym,
                       pseudonym_id=study.pseudonym, options=options,
                       date_shift_days=study.deid_date_shift_days)


class DeidExportError(Exception):
    """A stored image that cannot be de-identified; the message names it by position only."""


@dataclass
class DeidReport:
    """What a de-identified export holds."""

    files: int = 0
    pixel_review: list[str] = field(default_factory=list)


def build_deidentified_zip(study: Study,
                           options: frozenset[DeidOption]) -> tuple[BinaryIO, DeidReport]:
    """Write a zip of the de-identified study to an unnamed temporary file; return it open.

    The file has no name in UPLOAD_TMP (O_TMPFILE, or unlinked at once), so nothing is
    left behind whether the response completes, the client goes away or the worker dies:
    the space is freed when the file object is closed (send_file closes it after the body).
    """
    store = image_store()
    ctx = study_context(study, options)
    report = DeidReport()
    tmp_dir = Path(current_app.config["UPLOAD_TMP"])
    tmp_dir.mkdir(parents=True, exist_ok=True)
    out_file = tempfile.TemporaryFile(prefix=DEID_ZIP_PREFIX, suffix=".zip", dir=tmp_dir)
    try:
        with zipfile.ZipFile(out_file, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for s_index, series in enumerate(study.series, start=1):
                for i_index, inst in enumerate(sorted(series.instances, key=_order), start=1):
                    data = store.read_verified(inst.storage_key, inst.sha256)
                    try:
                        ds = dcmread(io.BytesIO(data))
                        result = deidentify_dataset(ds, ctx)
                        out = io.BytesIO()
                        ds.save_as(out, enforce_file_format=True)
                    except Exception as exc:  # noqa: BLE001 - never ship it half done
                        raise DeidExportError(
                            f"image S{s_index:03d}/I{i_index:05d} could not be read for "
                            f"de-identification ({type(exc).__name__})") from exc
                    zf.writestr(f"{study.pseudonym}/S{s_index:03d}/I{i_index:05d}.dcm",
                                out.getvalue())
                    report.files += 1
                    if result.pixel_review_needed:
                        report.pixel_review.append(
                            f"S{s_index:03d}/I{i_index:05d}.dcm: {result.review_reason}"
                        )
            zf.writestr(f"{study.pseudonym}/DEIDENTIFICATION.txt", _manifest(options, report))
    except BaseException:
        out_file.close()
        raise
    out_file.seek(0)
    return out_file, report


def remove_leftover_zips(tmp_dir: str | os.PathLike[str]) -> int:
    """Delete de-identified zips that an older version or a crash left in tmp_dir."""
    removed = 0
    folder = Path(tmp_dir)
    if not folder.is_dir():
        return 0
    for path in folder.glob(f"{DEID_ZIP_PREFIX}*.zip"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed


def _order(inst) -> tuple:
    return (inst.slice_position is None, inst.slice_position or 0.0,
            inst.instance_number or 0, inst.id)


def _manifest(options: frozenset[DeidOption], report: DeidReport) -> str:
    lines = [
        "De-identified with the DICOM PS3.15 Annex E Basic Application Level",
        "Confidentiality Profile (code 113100).",
        "Options: " + (", ".join(sorted(o.name for o in options)) or "none"),
        f"Files: {report.files}",
        "",
    ]
    if report.pixel_review:
        lines.append("PIXEL REVIEW NEEDED: these images may carry burned-in text that header")
        lines.append("de-identification cannot remove. Check them before sharing:")
        lines.extend(f"  {line}" for line in report.pixel_review)
    else:
        lines.append("No image declares or suggests burned-in annotation.")
    return "\n".join(lines) + "\n"
