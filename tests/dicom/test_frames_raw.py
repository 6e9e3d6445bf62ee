"""One frame's bytes out of stored files, and the rendering options of rendered resources."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread

from qaportal.dicom import DicomRejected
from qaportal.dicom.frames_raw import FrameReader
from qaportal.dicom.render import apply_window
from qaportal.dicom.render_options import (
    Viewport,
    apply_viewport,
    encode,
    parse_quality,
    parse_viewport,
    parse_window,
    region_fits,
)


def test_deflated_file_frame_is_its_pixel_data(dicom_file):
    path = dicom_file("image_dfl.dcm")  # Deflated Explicit VR Little Endian
    with FrameReader(path) as reader:
        assert reader.native and reader.frames == 1
        assert reader.uncompressed(0) == dcmread(path).PixelData
        assert reader.stored(0) == reader.uncompressed(0)


def test_one_bit_frames_are_packed_from_a_byte_boundary(dicom_file):
    path = dicom_file("liver.dcm")  # 3 frames of 512 x 512, BitsAllocated 1
    arrays = dcmread(path).pixel_array
    with FrameReader(path) as reader:
        for index in range(3):
            data = np.frombuffer(reader.uncompressed(index), np.uint8)
            bits = np.unpackbits(data, bitorder="little").reshape(512, 512)
            assert np.array_equal(bits, arrays[index])


def test_big_endian_frame_comes_out_little_endian(dicom_file):
    path = dicom_file("MR_small_bigendian.dcm")
    with FrameReader(path) as reader:
        data = reader.uncompressed(0)
    assert data == dcmread(path).pixel_array.astype("<i2").tobytes()
    assert data == dcmread(dicom_file("MR_small.dcm")).PixelData


def test_damaged_files_are_refused(dicom_file, tmp_path):
    full = dicom_file("CT_small.dcm").read_bytes()
    short = tmp_path / "short.dcm"
    short.write_bytes(full[:-1000])  # into the Pixel Data (138 bytes follow it)
    with FrameReader(short) as reader, pytest.raises(DicomRejected, match="shorter"):
        reader.uncompressed(0)
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all" * 10)
    with pytest.raises(DicomRejected):
        FrameReader(junk)
    with FrameReader(dicom_file("emri_small.dcm")) as reader, \
            pytest.raises(DicomRejected, match="out of range"):
        reader.stored(10)


def test_window_functions():
    values = np.array([-1000.0, 40.0, 1000.0], np.float32)
    assert list(apply_window(values.copy(), 40, 80)) == [0, 129, 255]  # PS3.3 C.11.2.1.2
    assert list(apply_window(values.copy(), 40, 80, "linear-exact")) == [0, 127, 255]
    assert list(apply_window(values.copy(), 40, 80, "sigmoid")) == [0, 127, 255]
    gentle = apply_window(np.array([60.0], np.float32), 40, 80, "sigmoid")[0]
    steep = apply_window(np.array([60.0], np.float32), 40, 80)[0]
    assert 127 < gentle < steep  # the sigmoid rises more slowly near the centre


def test_parse_query_values():
    assert parse_window("40,80") == ((40.0, 80.0), "linear")
    assert parse_window("-600,1500,SIGMOID") == ((-600.0, 1500.0), "sigmoid")
    assert parse_window(None) == (None, "linear")
    for bad in ("40", "40,0", "a,b", "40,80,cubic", "1,2,3,4", "nan,5"):
        with pytest.raises(ValueError):
            parse_window(bad)
    assert parse_viewport("64,32", 10**6) == Viewport(64, 32)
    assert parse_viewport("64,32,10,0,-10,20", 10**6).region == (10.0, 0.0, -10.0, 20.0)
    for bad in ("64", "0,5", "64,32,1,2", "99999,2", "64,32,-1,0,5,5", "64,32,0,0,0,5"):
        with pytest.raises(ValueError):
            parse_viewport(bad, 10**6)
    with pytest.raises(ValueError):
        parse_viewport("2000,2000", 1000)  # more pixels than the renderer allows
    assert parse_quality(None) == 90 and parse_quality("5") == 5
    for bad in ("0", "101", "x"):
        with pytest.raises(ValueError):
            parse_quality(bad)


def test_viewport_crops_flips_and_fits():
    grey = Image.fromarray(np.arange(200 * 100, dtype=np.uint32).reshape(100, 200)
                           .astype(np.uint8))
    assert apply_viewport(grey, Viewport(50, 50), False).size == (50, 25)
    assert apply_viewport(grey, Viewport(400, 400), False).size == (400, 200)
    assert apply_viewport(grey, None, True).size == (128, 64)
    assert apply_viewport(grey, None, False).size == (200, 100)
    cropped = apply_viewport(grey, Viewport(20, 10, (0, 0, 20, 10)), False)
    assert np.array_equal(np.asarray(cropped), np.asarray(grey)[:10, :20])
    flipped = apply_viewport(grey, Viewport(20, 10, (20, 10, -20, -10)), False)
    assert np.array_equal(np.asarray(flipped), np.asarray(grey)[:10, :20][::-1, ::-1])
    assert region_fits(Viewport(5, 5, (150, 50, 100, 100)), 200, 100)
    assert not region_fits(Viewport(5, 5, (300, 0, 10, 10)), 200, 100)
    with pytest.raises(ValueError):
        apply_viewport(grey, Viewport(5, 5, (300, 0, 10, 10)), False)


@pytest.mark.parametrize(("fmt", "name"), [("jpeg", "JPEG"), ("png", "PNG"), ("gif", "GIF")])
def test_encode_formats(fmt, name):
    for mode in ("L", "RGB"):
        data = encode(Image.new(mode, (16, 8), 100), fmt, 50)
        out = Image.open(io.BytesIO(data))
        assert out.format == name and out.size == (16, 8)
