"""Rendering: every codec in the test set, windows, MONOCHROME1, colour, bombs, corruption."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_fragments

from qaportal.dicom import (
    WINDOW_PRESETS,
    DicomRejected,
    frame_count,
    render_frame,
    render_thumbnail,
)

FileLookup = Callable[[str], Path]


def _png(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(io.BytesIO(data)))


def _bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "frame", "mode"),
    [
        ("CT_small.dcm", 0, "L"),
        ("MR_small.dcm", 0, "L"),
        ("MR_small_RLE.dcm", 0, "L"),
        ("MR_small_jp2klossless.dcm", 0, "L"),
        ("MR_small_jpeg_ls_lossless.dcm", 0, "L"),
        ("MR_small_bigendian.dcm", 0, "L"),
        ("693_J2KI.dcm", 0, "L"),
        ("693_UNCR.dcm", 0, "L"),
        ("JPEG-LL.dcm", 0, "L"),
        ("emri_small.dcm", 9, "L"),
        ("RG1_UNCR.dcm", 0, "L"),
        ("SC_rgb_jpeg_gdcm.dcm", 0, "RGB"),
        ("SC_ybr_full_uncompressed.dcm", 0, "RGB"),
        ("US1_J2KI.dcm", 0, "RGB"),
        ("examples_ybr_color.dcm", 0, "RGB"),
        ("examples_ybr_color.dcm", 29, "RGB"),
        ("examples_palette.dcm", 0, "RGB"),
    ],
)
def test_renders_png_of_right_size(
    dicom_file: FileLookup, name: str, frame: int, mode: str
) -> None:
    path = dicom_file(name)
    ds = dcmread(path, stop_before_pixels=True)
    image = Image.open(io.BytesIO(render_frame(path, frame=frame)))
    assert image.format == "PNG" and image.mode == mode
    assert image.size == (ds.Columns, ds.Rows)
    assert np.asarray(image).std() > 1  # an actual picture, not a flat field


def test_lossless_variants_render_identically(dicom_file: FileLookup) -> None:
    ref = _png(render_frame(dicom_file("MR_small.dcm")))
    for name in ("MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm"):
        assert np.array_equal(_png(render_frame(dicom_file(name))), ref), name


def test_ybr_is_converted_to_rgb(dicom_file: FileLookup) -> None:
    rgb = _png(render_frame(dicom_file("SC_rgb_jpeg_gdcm.dcm"))).astype(int)
    ybr = _png(render_frame(dicom_file("SC_ybr_full_uncompressed.dcm"))).astype(int)
    assert np.abs(rgb - ybr).mean() < 3  # same picture stored as RGB and as YCbCr


def test_multiframe_frames_differ_and_range_is_checked(dicom_file: FileLookup) -> None:
    path = dicom_file("examples_ybr_color.dcm")
    assert frame_count(path) == 30
    assert not np.array_equal(_png(render_frame(path, 0)), _png(render_frame(path, 29)))
    with pytest.raises(DicomRejected, match="out of range"):
        render_frame(path, frame=30)


def test_windows_change_the_picture(dicom_file: FileLookup) -> None:
    path = dicom_file("693_UNCR.dcm")
    lung = _png(render_frame(path, window=WINDOW_PRESETS["CT"]["lung"]))
    brain = _png(render_frame(path, window=WINDOW_PRESETS["CT"]["brain"]))
    assert abs(float(lung.mean()) - float(brain.mean())) > 5
    # Air (-1000 HU) is black in both; lung window shows more grey levels.
    assert len(np.unique(lung)) > len(np.unique(brain))


def test_monochrome1_is_inverted(ct_small: Path) -> None:
    ds = dcmread(ct_small)
    window = (40.0, 400.0)
    mono2 = _png(render_frame(_bytes(ds), window=window)).astype(int)
    ds.PhotometricInterpretation = "MONOCHROME1"
    mono1 = _png(render_frame(_bytes(ds), window=window)).astype(int)
    assert np.array_equal(mono1 + mono2, np.full_like(mono1, 255))


def test_real_monochrome1_file_has_dark_background(dicom_file: FileLookup) -> None:
    # RG1 is a CR chest radiograph stored MONOCHROME1: high values (air) must show dark.
    path = dicom_file("RG1_UNCR.dcm")
    ds = dcmread(path)
    raw = ds.pixel_array
    out = _png(render_frame(path)).astype(int)
    bright_raw = raw > np.percentile(raw, 90)
    assert out[bright_raw].mean() < out[~bright_raw].mean()


def test_bomb_guard_runs_before_decoding(ct_small: Path, dicom_file: FileLookup) -> None:
    for path in (ct_small, dicom_file("693_J2KI.dcm")):
        ds = dcmread(path)
        ds.Rows = ds.Columns = 65535
        with pytest.raises(DicomRejected) as info:
            render_frame(_bytes(ds))
        assert info.value.reason == "image too large: 65535×65535×1"


def test_corrupt_compressed_pixels_rejected(dicom_file: FileLookup) -> None:
    ds = dcmread(dicom_file("693_J2KI.dcm"))
    fragments = list(generate_fragments(ds.PixelData[8:]))  # skip the empty offset table
    garbage = bytes(range(256)) * (len(fragments[0]) // 256 + 1)
    ds.PixelData = encapsulate([garbage[: len(fragments[0])]])
    with pytest.raises(DicomRejected, match="cannot decode frame"):
        render_frame(_bytes(ds))


def test_short_native_pixels_rejected(ct_small: Path) -> None:
    ds = dcmread(ct_small)
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    with pytest.raises(DicomRejected, match="cannot decode frame"):
        render_frame(_bytes(ds))


def test_not_dicom_rejected(tmp_path: Path) -> None:
    path = tmp_path / "x.dcm"
    path.write_text("hello")
    with pytest.raises(DicomRejected):
        render_frame(path)


def test_thumbnail_fits_box(dicom_file: FileLookup) -> None:
    thumb = Image.open(io.BytesIO(render_thumbnail(dicom_file("US1_J2KI.dcm"), size=128)))
    assert max(thumb.size) == 128 and thumb.size == (128, 96)
