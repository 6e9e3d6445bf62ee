"""The DICOM JSON model: the same as pydicom's conversion, bulk data by path, lookups."""

from __future__ import annotations

import logging
import warnings

import pydicom
import pytest
from pydicom.data import get_testdata_file, get_testdata_files

from qaportal.dicom.json_model import bulk_paths, find_element, to_json


def _readable() -> list[str]:
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in get_testdata_files("*"):
            try:
                pydicom.dcmread(path)
            except Exception:  # noqa: BLE001, S112 - not a DICOM file pydicom reads
                continue
            out.append(path)
    return out


def test_bytes_fast_path_equals_pydicoms_conversion_on_every_test_file():
    """Straight-from-bytes conversion must give exactly what pydicom's own conversion gives
    (every element decoded by pydicom first, then converted), on every readable file."""
    files = _readable()
    assert len(files) > 100
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for path in files:
                fast = pydicom.dcmread(path)
                slow = pydicom.dcmread(path)
                for _ in slow.iterall():  # decode everything the pydicom way
                    pass
                assert to_json(fast, "B/") == to_json(slow, "B/"), path
    finally:
        logging.disable(logging.NOTSET)


def test_pixel_data_and_large_binary_values_are_bulk_data_by_path():
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    out = to_json(ct, "http://x/bulkdata/")
    assert out["7FE00010"] == {"vr": "OW", "BulkDataURI": "http://x/bulkdata/7FE00010"}
    assert out["00431029"]["BulkDataURI"].endswith("/00431029")  # 2 KB private OB
    assert "InlineBinary" in out["00431028"]  # a small one stays inline
    assert "00020010" not in out and "00080000" not in out
    assert out["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "CompressedSamples^CT1"}]}
    ecg = pydicom.dcmread(get_testdata_file("waveform_ecg.dcm"))
    paths = list(bulk_paths(ecg))
    assert paths == ["54000100/0/54001010", "54000100/1/54001010"]
    assert find_element(ecg, paths[1]).value == ecg.WaveformSequence[1].WaveformData


@pytest.mark.parametrize("path", ["", "zz", "7FE00010/0", "00100010/0/00100010",
                                  "54000100/9/54001010", "54000100/x/54001010", "00191099"])
def test_find_element_refuses_paths_that_name_nothing(path):
    ecg = pydicom.dcmread(get_testdata_file("waveform_ecg.dcm"))
    assert find_element(ecg, path) is None
