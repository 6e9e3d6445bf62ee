"""Real DICOM files for tests: pydicom's samples, generated series, and broken copies."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file


def sample(name: str) -> Path:
    """Return the path of a pydicom (or pydicom-data) test file."""
    path = get_testdata_file(name)
    assert path, f"{name} is not available"
    return Path(path)


def copy_sample(name: str, dest_dir: Path, new_name: str | None = None) -> Path:
    """Copy a test file into dest_dir."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / (new_name or name)
    shutil.copyfile(sample(name), target)
    return target


def modified_copy(name: str, dest: Path, **changes) -> Path:
    """Write a copy of a test file with some header elements changed (keywords)."""
    ds = pydicom.dcmread(sample(name))
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    dest.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dest)
    return dest


def truncated_copy(name: str, dest: Path) -> Path:
    """Write the first half of a test file."""
    data = sample(name).read_bytes()
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data[: len(data) // 2])
    return dest


def crashing_copies(dest_dir: Path) -> list[Path]:
    """Write damaged files that make pydicom itself raise something other than a DICOM error.

    Each broke a whole batch once: an unknown VR (NotImplementedError), a group length of
    odd size (BytesLengthException) and a deflated dataset cut short (zlib.error).
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    ct = sample("CT_small.dcm").read_bytes()
    ts_elem = ct.find(b"\x02\x00\x10\x00UI")
    group_length = ct.find(b"\x02\x00\x00\x00UL\x04\x00")
    assert ts_elem > 0 and group_length > 0
    deflated = sample("image_dfl.dcm").read_bytes()
    files = {
        "unknown-vr.dcm": ct[: ts_elem + 4] + b"UM" + ct[ts_elem + 6 :],
        "odd-length.dcm": ct[: group_length + 6] + b"\x06\x00" + ct[group_length + 8 :],
        "deflated-cut-short.dcm": deflated[: len(deflated) // 2],
    }
    paths = []
    for name, data in files.items():
        (dest_dir / name).write_bytes(data)
        paths.append(dest_dir / name)
    return paths


def unknown_transfer_syntax_copy(dest: Path) -> Path:
    """Write CT_small with a transfer syntax UID pydicom does not know (a private one)."""
    ct = sample("CT_small.dcm").read_bytes()
    at = ct.find(b"1.2.840.10008.1.2.1\x00")
    assert at > 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(ct[:at] + b"1.2.840.10008.1.2.9" + ct[at + 19 :])
    return dest


def zip_with_corrupt_deflated_entry(dest: Path) -> Path:
    """Write a ZIP_DEFLATED archive of MR_small (intact) and CT_small (deflate stream damaged)."""
    import zipfile

    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(sample("MR_small.dcm"), "study/mr.dcm")
        zf.write(sample("CT_small.dcm"), "study/ct.dcm")
    with zipfile.ZipFile(dest) as zf:
        info = zf.getinfo("study/ct.dcm")
    data = bytearray(dest.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 10
    data[start : start + 50] = b"\xff" * 50
    dest.write_bytes(bytes(data))
    return dest


def exam_folder(dest: Path, *, slices: int, patient: tuple[str, str],
                series_description: str) -> Path:
    """A folder as a radiologist would pick it: a CT series built from CT_small, and MR_small."""
    from qaportal.dicom import generate_ct_series

    generate_ct_series(dest / "ct", slices=slices, base=str(sample("CT_small.dcm")),
                       patient=patient, series_description=series_description)
    shutil.copy(sample("MR_small.dcm"), dest / "MR_small.dcm")
    return dest


def frames_declared_copy(name: str, dest: Path, frames: int) -> Path:
    """Write a copy of a test file whose NumberOfFrames says `frames`, pixel data unchanged."""
    ds = pydicom.dcmread(sample(name))
    ds.NumberOfFrames = frames
    dest.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dest)
    return dest


def _element(tag: int, vr: bytes, value_length: int) -> bytes:
    """Return an explicit VR little endian element header (a long-length VR)."""
    import struct

    return struct.pack("<HH2sHL", tag >> 16, tag & 0xFFFF, vr, 0, value_length)


def overlong_element_copy(name: str, dest: Path, *, declared: int = 0xFFFFFFF0,
                          present: int = 512) -> Path:
    """Append a private element declaring `declared` bytes to a little endian test file
    that ends `present` bytes after the element's header (in the file's own VR encoding)."""
    import struct

    data = sample(name).read_bytes()
    implicit, little = pydicom.dcmread(sample(name), force=True).original_encoding
    assert little, "little endian files only"
    creator = b"HOSTILE "
    if implicit:
        elements = (struct.pack("<HHL", 0x7FF1, 0x0010, len(creator)) + creator
                    + struct.pack("<HHL", 0x7FF1, 0x1000, declared))
    else:
        elements = (struct.pack("<HH2sH", 0x7FF1, 0x0010, b"LO", len(creator)) + creator
                    + _element(0x7FF11000, b"OB", declared))
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data + elements + b"\x5a" * present)
    return dest


def deflate_bomb(dest: Path, inflated_bytes: int, *, where: str = "header") -> Path:
    """Write CT_small as a Deflated Explicit VR Little Endian file that inflates to about
    `inflated_bytes`: a private element of zeros before the pixel data (where="header"), or
    pixel data declared and present at that size (where="pixels"). Streamed, never held."""
    import struct
    import zlib

    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    ds = pydicom.dcmread(sample("CT_small.dcm"))
    del ds.PixelData
    pixel_bytes = 128 * 128 * 2
    if where == "pixels":
        side = int((inflated_bytes // 2) ** 0.5) // 2 * 2
        ds.Rows = ds.Columns = side
        pixel_bytes = side * side * 2
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    meta = DicomBytesIO()
    meta.is_little_endian, meta.is_implicit_VR = True, False
    write_file_meta_info(meta, ds.file_meta)
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    z = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    dest.parent.mkdir(parents=True, exist_ok=True)
    chunk = bytes(1024 * 1024)
    with dest.open("wb") as out:
        out.write(bytes(128) + b"DICM" + meta.getvalue())
        out.write(z.compress(body.getvalue()))
        if where == "header":
            creator = b"HOSTILE "
            out.write(z.compress(struct.pack("<HH2sH", 0x7FDF, 0x0010, b"LO", len(creator))
                                 + creator + _element(0x7FDF1000, b"OB", inflated_bytes)))
            for start in range(0, inflated_bytes, len(chunk)):
                out.write(z.compress(chunk[: min(len(chunk), inflated_bytes - start)]))
        out.write(z.compress(_element(0x7FE00010, b"OW", pixel_bytes)))
        for start in range(0, pixel_bytes, len(chunk)):
            out.write(z.compress(chunk[: min(len(chunk), pixel_bytes - start)]))
        out.write(z.flush())
    return dest


def one_fragment_copy(dest: Path, frames: int, *, transfer_syntax: str | None = None) -> Path:
    """Write MR_small_RLE (one RLE frame in one fragment, empty offset table) declaring
    `frames` frames: 2 KB that once claimed 300,000 frames and was stored."""
    from pydicom.encaps import encapsulate, generate_frames

    ds = pydicom.dcmread(sample("MR_small_RLE.dcm"))
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([frame], has_bot=False)
    ds.NumberOfFrames = frames
    if transfer_syntax:
        ds.file_meta.TransferSyntaxUID = transfer_syntax
    dest.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dest)
    return dest


def post_upload(client, *paths: Path, **fields):
    """Upload files through the browser's one-request form, with the context fields given."""
    files = [(open(p, "rb"), p.name) for p in paths]  # closed below
    try:
        return client.post("/studies/upload", data={"files": files, **fields},
                           content_type="multipart/form-data")
    finally:
        for fh, _ in files:
            fh.close()
