"""Serving a stored file in another transfer syntax: what can be produced, and how."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from qaportal.dicom.transcode import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    TranscodeError,
    can_serve,
    encode,
    read_dataset,
    to_explicit_little,
)

CASES = ["CT_small.dcm", "MR_small_implicit.dcm", "image_dfl.dcm", "MR_small_jp2klossless.dcm",
         "JPEG2000.dcm", "MR_small_RLE.dcm", "SC_rgb_jpeg_dcmtk.dcm", "emri_small_RLE.dcm",
         "JPEG-LL.dcm", "JPGExtended.dcm"]


@pytest.mark.parametrize("name", CASES)
def test_explicit_little_endian_copy_keeps_pixels_and_uids(name):
    path = get_testdata_file(name)
    original = pydicom.dcmread(path)
    ds = read_dataset(open(path, "rb").read())
    assert can_serve(str(ds.file_meta.TransferSyntaxUID), EXPLICIT_VR_LITTLE_ENDIAN)
    to_explicit_little(ds)
    served = pydicom.dcmread(io.BytesIO(encode(ds)))
    assert served.preamble == bytes(128)
    assert served.file_meta.TransferSyntaxUID == EXPLICIT_VR_LITTLE_ENDIAN
    assert served.SOPInstanceUID == original.SOPInstanceUID
    assert np.array_equal(served.pixel_array, original.pixel_array)


def test_what_cannot_be_produced():
    assert can_serve("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.90")  # as stored
    assert not can_serve(EXPLICIT_VR_LITTLE_ENDIAN, "1.2.840.10008.1.2.4.90")  # no encoding
    assert not can_serve("1.2.840.10008.1.2.2", EXPLICIT_VR_LITTLE_ENDIAN)  # big endian
    assert not can_serve("1.2.3.4", EXPLICIT_VR_LITTLE_ENDIAN)  # unknown
    assert can_serve("", EXPLICIT_VR_LITTLE_ENDIAN)  # a raw data set: implicit LE
    ds = pydicom.dcmread(get_testdata_file("MR_small_bigendian.dcm"))
    with pytest.raises(TranscodeError):
        to_explicit_little(ds)


def test_undecodable_pixel_data_is_a_transcode_error():
    ds = pydicom.dcmread(get_testdata_file("MR_small_RLE.dcm"))
    ds.PixelData = ds.PixelData[:40] + b"\x00" * (len(ds.PixelData) - 40)
    with pytest.raises(TranscodeError):
        to_explicit_little(ds)


def test_a_raw_data_set_gets_file_meta():
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    raw = DicomBytesIO()
    raw.is_little_endian, raw.is_implicit_VR = True, True
    write_dataset(raw, ds)  # the data set alone: no preamble, no file meta
    served = pydicom.dcmread(io.BytesIO(encode(read_dataset(raw.getvalue()))))
    assert served.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert served.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    assert served.PatientName == ds.PatientName
