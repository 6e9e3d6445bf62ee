"""Header parsing: real files accepted, broken and non-DICOM files refused with a reason."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from qaportal.dicom import DicomRejected, read_header


def test_ct_small_fields(ct_small: Path) -> None:
    h = read_header(ct_small)
    assert h.study_uid == "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
    assert h.sop_uid.endswith(".12322") and h.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2"
    assert h.patient_name == "CompressedSamples^CT1" and h.patient_id == "1CT1"
    assert h.modality == "CT" and h.institution == "JFK IMAGING CENTER"
    assert h.study_date == dt.date(2004, 1, 19) and h.study_time == dt.time(7, 27, 30)
    assert (h.rows, h.columns, h.frames, h.bits_allocated) == (128, 128, 1, 16)
    assert h.image_position == pytest.approx((-158.135803, -179.035797, -75.699997))
    assert h.image_orientation == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    assert h.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert h.photometric_interpretation == "MONOCHROME2"
    assert h.has_pixel_data and h.burned_in_annotation is None


@pytest.mark.parametrize(
    "name",
    [
        "MR_small.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
        "693_J2KI.dcm",
        "SC_rgb_jpeg_gdcm.dcm",
    ],
)
def test_compressed_and_variant_encodings(name: str, dicom_file: Callable[[str], Path]) -> None:
    h = read_header(dicom_file(name))
    assert h.has_pixel_data and h.rows and h.columns and h.study_uid and h.sop_uid


def test_mr_variants_agree(dicom_file: Callable[[str], Path]) -> None:
    base = read_header(dicom_file("MR_small.dcm"))
    for name in ("MR_small_RLE.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm"):
        h = read_header(dicom_file(name))
        assert (h.patient_name, h.rows, h.window_center) == (
            base.patient_name,
            base.rows,
            base.window_center,
        )


def test_multiframe_ultrasound(dicom_file: Callable[[str], Path]) -> None:
    h = read_header(dicom_file("examples_ybr_color.dcm"))
    assert h.frames == 30 and h.modality == "US" and h.samples_per_pixel == 3
    assert h.photometric_interpretation == "YBR_FULL_422"


def test_text_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "notes.dcm"
    path.write_text("Patient: John Doe\nStudyInstanceUID=1.2.3\n" * 20)
    with pytest.raises(DicomRejected, match="not a DICOM file"):
        read_header(path)


def test_empty_and_tiny_files_rejected(tmp_path: Path) -> None:
    for content in (b"", b"DICM", bytes(200)):
        path = tmp_path / "x.dcm"
        path.write_bytes(content)
        with pytest.raises(DicomRejected):
            read_header(path)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_RLE.dcm", "693_J2KI.dcm"])
def test_truncated_file_rejected(
    tmp_path: Path, name: str, dicom_file: Callable[[str], Path]
) -> None:
    data = dicom_file(name).read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DicomRejected, match="truncated"):
        read_header(cut)


def test_truncated_real_world_files_rejected(dicom_file: Callable[[str], Path]) -> None:
    for name in ("MR_truncated.dcm", "emri_small_jpeg_2k_lossless_too_short.dcm"):
        with pytest.raises(DicomRejected, match="truncated"):
            read_header(dicom_file(name))


@pytest.mark.parametrize("keyword", ["SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"])
def test_missing_uid_rejected(tmp_path: Path, ct_small: Path, keyword: str) -> None:
    ds = dcmread(ct_small)
    delattr(ds, keyword)
    ds.save_as(tmp_path / "x.dcm")
    with pytest.raises(DicomRejected) as info:
        read_header(tmp_path / "x.dcm")
    assert info.value.reason == f"missing {keyword}"


def test_dataset_without_preamble_accepted(tmp_path: Path, ct_small: Path) -> None:
    ds = dcmread(ct_small)
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, True
    write_dataset(buf, ds)  # bare implicit VR little endian dataset, no preamble or meta
    path = tmp_path / "raw.dcm"
    path.write_bytes(buf.getvalue())
    h = read_header(path)
    assert h.sop_uid == ds.SOPInstanceUID and h.has_pixel_data


def test_image_without_pixel_data_rejected(tmp_path: Path, ct_small: Path) -> None:
    ds = dcmread(ct_small)
    del ds.PixelData
    ds.save_as(tmp_path / "x.dcm")
    with pytest.raises(DicomRejected, match="truncated"):
        read_header(tmp_path / "x.dcm")


def test_non_image_object_accepted_without_pixels(dicom_file: Callable[[str], Path]) -> None:
    h = read_header(dicom_file("rtplan.dcm"))
    assert not h.has_pixel_data and h.rows is None
