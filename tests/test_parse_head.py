"""The header parse started from a file's first bytes held in memory (STOW-RS hands it
ReceivedFile.head) gives exactly what reading the file gives, on real DICOM files."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from qaportal.dicom import generate_ct_series
from qaportal.dicom.errors import DicomRejected
from qaportal.dicom.parse import ParseLimits, read_header
from qaportal.dicom.quick_header import quick_header
from qaportal.studies.receive import KEEP_HEAD

REAL = ["CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "emri_small_RLE.dcm",
        "US1_J2KR.dcm", "rtplan.dcm"]


def _both(path: Path, head_size: int = KEEP_HEAD):
    data = path.read_bytes()
    return (read_header(path, ParseLimits()),
            read_header(path, ParseLimits(), data[:head_size]))


@pytest.mark.parametrize("name", REAL)
def test_real_files_parse_the_same_from_their_head(name):
    from_file, from_head = _both(Path(get_testdata_file(name)))
    assert from_head == from_file


def test_a_header_longer_than_the_head_reads_on_from_the_file(tmp_path):
    path = generate_ct_series(tmp_path / "ct", slices=1)[0]
    ds = dcmread(path)
    block = ds.private_block(0x0011, "QAPORTAL TEST", create=True)
    block.add_new(0x01, "OB", bytes(range(256)) * 160)  # 40 KB before the pixel data
    ds.save_as(path)
    assert path.stat().st_size > 560_000
    from_file, from_head = _both(path)
    assert from_head == from_file
    assert from_head.file_size == path.stat().st_size
    # The fast path itself, not pydicom after it gave up.
    quick = quick_header(path, ParseLimits(), path.read_bytes()[:KEEP_HEAD])
    assert quick is not None and quick == from_file


def test_a_short_head_is_not_trusted_over_the_file(tmp_path):
    path = generate_ct_series(tmp_path / "ct", slices=1)[0]
    from_file, from_head = _both(path, head_size=100)  # shorter than the first read
    assert from_head == from_file


def test_a_head_and_a_truncated_file_are_refused_alike(tmp_path):
    path = generate_ct_series(tmp_path / "ct", slices=1)[0]
    head = path.read_bytes()[:KEEP_HEAD]
    with path.open("r+b") as fh:
        fh.truncate(200_000)  # the pixel data cut off
    with pytest.raises(DicomRejected) as plain:
        read_header(path, ParseLimits())
    with pytest.raises(DicomRejected) as started:
        read_header(path, ParseLimits(), head)
    assert started.value.reason == plain.value.reason
