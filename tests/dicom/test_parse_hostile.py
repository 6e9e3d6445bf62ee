"""Hostile files refused at ingest by name: frame counts the pixel data cannot hold, deflate
bombs, elements running past the end of the file. Real files stay accepted."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from pydicom.encaps import encapsulate_extended, generate_frames
from pydicom.uid import MPEG4HP41

from qaportal.dicom import DicomRejected, read_header
from qaportal.dicom.parse import ParseLimits
from tests.studyfiles import (
    deflate_bomb,
    frames_declared_copy,
    one_fragment_copy,
    overlong_element_copy,
)

MiB = 1024 * 1024
NO_CAP = ParseLimits(max_frames=2**31)


def _refused(path: Path, limits: ParseLimits | None = None) -> str:
    with pytest.raises(DicomRejected) as info:
        read_header(path, limits)
    return info.value.reason


def _cost(path: Path, limits: ParseLimits | None = None) -> tuple[float, int]:
    """Return (seconds, peak traced bytes) of reading a header that is refused."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        _refused(path, limits)
        return time.perf_counter() - start, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("frames", [300_000, 2**31 - 1])
def test_a_huge_frame_count_in_a_tiny_file_is_refused_at_once(tmp_path: Path, frames: int):
    path = one_fragment_copy(tmp_path / "bomb.dcm", frames)
    assert path.stat().st_size < 8 * 1024
    assert _refused(path) == (f"too many frames: NumberOfFrames {frames} is over the limit "
                              "of 20000")
    # Past any cap, the pixel data itself refuses it: one fragment holds one frame at most.
    reason = _refused(path, NO_CAP)
    assert reason.startswith(f"NumberOfFrames {frames} but only 1 pixel data fragment")
    seconds, peak = _cost(path, NO_CAP)
    assert seconds < 1 and peak < 4 * MiB  # nothing loops or allocates per declared frame


def test_the_frame_cap_is_a_setting(dicom_file: Callable[[str], Path]) -> None:
    path = dicom_file("emri_small_RLE.dcm")  # 10 frames, 10 fragments
    assert read_header(path).frames == 10
    assert _refused(path, ParseLimits(max_frames=9)).startswith(
        "too many frames: NumberOfFrames 10 is over the limit of 9")


def test_native_pixel_data_must_hold_every_declared_frame(tmp_path: Path) -> None:
    path = frames_declared_copy("CT_small.dcm", tmp_path / "ct.dcm", 2)
    assert _refused(path) == ("NumberOfFrames 2 does not match the pixel data "
                              "(65536 bytes needed, 32768 present)")
    assert read_header(frames_declared_copy("CT_small.dcm", tmp_path / "ok.dcm", 1)).frames == 1


def test_offset_tables_must_list_the_declared_frames(tmp_path: Path,
                                                     dicom_file: Callable[[str], Path]):
    ds = pydicom.dcmread(dicom_file("emri_small_RLE.dcm"))  # basic offset table: 10 frames
    ds.NumberOfFrames = 11
    ds.save_as(tmp_path / "bot.dcm")
    assert _refused(tmp_path / "bot.dcm") == (
        "NumberOfFrames 11 does not match the basic offset table (10 frames)")
    frames = list(generate_frames(ds.PixelData, number_of_frames=10))
    data, offsets, lengths = encapsulate_extended(frames)
    ds.PixelData, ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = data, offsets, lengths
    ds.NumberOfFrames = 10
    ds.save_as(tmp_path / "eot.dcm")
    assert read_header(tmp_path / "eot.dcm").frames == 10
    ds.NumberOfFrames = 11
    ds.save_as(tmp_path / "eot11.dcm")
    assert _refused(tmp_path / "eot11.dcm") == (
        "NumberOfFrames 11 does not match the extended offset table (10 frames)")


def test_video_frames_are_not_counted_by_fragment_but_still_capped(tmp_path: Path) -> None:
    """MPEG-2/MPEG-4/HEVC: one video stream cut into fragments anywhere (PS3.5 A.4)."""
    path = one_fragment_copy(tmp_path / "video.dcm", 300, transfer_syntax=MPEG4HP41)
    assert read_header(path).frames == 300
    big = one_fragment_copy(tmp_path / "long.dcm", 30_000, transfer_syntax=MPEG4HP41)
    assert _refused(big).startswith("too many frames")


@pytest.mark.parametrize("name", ["rtplan.dcm", "CT_small.dcm", "MR_small_implicit.dcm"])
def test_an_element_running_past_the_end_of_the_file_is_refused(tmp_path: Path, name: str):
    """0xFFFFFFF0 bytes declared, 512 present: once stored as a valid instance."""
    path = overlong_element_copy(name, tmp_path / "overlong.dcm")
    assert _refused(path) == "truncated file: an element runs past the end of the data"
    seconds, peak = _cost(path)
    assert peak < 4 * MiB
    # The same element with all its bytes present is fine.
    whole = overlong_element_copy(name, tmp_path / "whole.dcm", declared=512, present=512)
    assert read_header(whole).sop_uid


def test_a_real_truncated_file_is_refused(dicom_file: Callable[[str], Path]) -> None:
    assert read_header(dicom_file("rtplan.dcm")).sop_uid
    assert _refused(dicom_file("rtplan_truncated.dcm")) == (
        "truncated file: an element runs past the end of the data")


@pytest.mark.parametrize("where", ["header", "pixels", "no-preamble"])
def test_a_deflate_bomb_is_refused_while_streaming(tmp_path: Path, where: str) -> None:
    path = deflate_bomb(tmp_path / "bomb.dcm", 64 * MiB,
                        where="header" if where == "no-preamble" else where)
    if where == "no-preamble":  # the meta group first, as pydicom also reads with force
        path.write_bytes(path.read_bytes()[132:])
    assert path.stat().st_size < MiB
    limits = ParseLimits(max_inflated_bytes=16 * MiB)
    assert _refused(path, limits) == (
        f"deflated data set inflates past the limit of {16 * MiB} bytes")
    seconds, peak = _cost(path, limits)
    assert peak < 4 * MiB  # inflated piece by piece, never held (pydicom held all 64 MiB)


def test_deflated_files_within_the_limit_parse_as_before(tmp_path: Path,
                                                         dicom_file: Callable[[str], Path]):
    header = read_header(dicom_file("image_dfl.dcm"))
    assert header.has_pixel_data and header.rows and header.transfer_syntax_uid == \
        "1.2.840.10008.1.2.1.99"
    small = read_header(deflate_bomb(tmp_path / "small.dcm", 100_000))
    assert (small.rows, small.columns, small.frames) == (128, 128, 1)
    assert small.patient_name == "CompressedSamples^CT1"
    cut = tmp_path / "cut.dcm"
    cut.write_bytes((tmp_path / "small.dcm").read_bytes()[:-200])
    assert _refused(cut).startswith("truncated")


def test_frames_declared_without_pixel_data_are_refused(tmp_path: Path,
                                                        dicom_file: Callable[[str], Path]):
    ds = pydicom.dcmread(dicom_file("rtplan.dcm"), force=True)
    ds.NumberOfFrames = 5
    ds.save_as(tmp_path / "plan.dcm")
    assert _refused(tmp_path / "plan.dcm") == "NumberOfFrames 5 but no pixel data"
    assert read_header(dicom_file("rtplan.dcm")).frames == 1
