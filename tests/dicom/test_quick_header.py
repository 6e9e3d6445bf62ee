"""The fast header path: the same InstanceHeader as pydicom's, or None, never a different
answer; and it is really taken for the common uncompressed files."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import pytest
from pydicom.data import get_testdata_files

from qaportal.dicom import DicomRejected, generate_ct_series, read_header
from qaportal.dicom.parse import InstanceHeader, ParseLimits, read_header_pydicom
from qaportal.dicom.quick_header import quick_header
from tests import studyfiles

LIMITS = ParseLimits()
# Common uncompressed files: explicit and implicit VR, undefined-length sequences (liver,
# eCT_Supplemental), overlays, colour, multi-frame, odd-length pixel data.
COMMON = ("CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "693_UNCR.dcm",
          "liver_1frame.dcm", "eCT_Supplemental.dcm", "examples_overlay.dcm",
          "rtdose_1frame.dcm", "SC_rgb_small_odd.dcm", "US1_UNCI.dcm",
          "SC_ybr_full_422_uncompressed.dcm", "emri_small.dcm")


def slow(path: Path) -> InstanceHeader | DicomRejected:
    try:
        return read_header_pydicom(path, LIMITS)
    except DicomRejected as exc:
        return exc


def assert_same_or_deferred(path: Path) -> InstanceHeader | None:
    """The fast path returns None, or exactly (values and types) what pydicom returns."""
    fast = quick_header(path, LIMITS)
    if fast is None:
        return None
    expected = slow(path)
    assert not isinstance(expected, DicomRejected), (path.name, expected.reason)
    assert fast == expected, path.name
    for field in fast.__dataclass_fields__:
        got, want = getattr(fast, field), getattr(expected, field)
        assert type(got) is type(want), (path.name, field, got, want)
        if isinstance(got, tuple):
            assert [type(v) for v in got] == [type(v) for v in want], (path.name, field)
    return fast


@pytest.fixture(scope="module")
def generated_ct(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 512x512 slice from the project's generator (693_UNCR base, as in the benchmarks)."""
    return generate_ct_series(tmp_path_factory.mktemp("ct"), slices=1)[0]


def test_every_pydicom_test_file_is_read_alike() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        files = [Path(f) for f in get_testdata_files()]
        taken = [f.name for f in files if assert_same_or_deferred(f) is not None]
    assert len(files) > 200 and len(taken) > 40  # pydicom-data is there, the path is used


def test_project_study_files_are_read_alike(tmp_path: Path, generated_ct: Path) -> None:
    made = [
        generated_ct,
        studyfiles.truncated_copy("CT_small.dcm", tmp_path / "half.dcm"),
        studyfiles.unknown_transfer_syntax_copy(tmp_path / "private-ts.dcm"),
        studyfiles.modified_copy("CT_small.dcm", tmp_path / "no-study.dcm",
                                 StudyInstanceUID=""),
        studyfiles.modified_copy("MR_small.dcm", tmp_path / "yes.dcm",
                                 BurnedInAnnotation="YES"),
        studyfiles.frames_declared_copy("CT_small.dcm", tmp_path / "f10.dcm", 10),
        studyfiles.frames_declared_copy("CT_small.dcm", tmp_path / "f1.dcm", 1),
        studyfiles.overlong_element_copy("CT_small.dcm", tmp_path / "long.dcm"),
        studyfiles.overlong_element_copy("MR_small_implicit.dcm", tmp_path / "long-i.dcm"),
        studyfiles.overlong_element_copy("CT_small.dcm", tmp_path / "long-ok.dcm",
                                         declared=64, present=64),
        *studyfiles.crashing_copies(tmp_path / "crash"),
        *sorted(studyfiles.exam_folder(tmp_path / "exam", slices=3, patient=("A^B", "P1"),
                                       series_description="AX").rglob("*.dcm")),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in made:
            assert_same_or_deferred(path)
    assert quick_header(made[-1], LIMITS) is not None
    assert quick_header(tmp_path / "long-ok.dcm", LIMITS) is not None  # trailing elements


@pytest.mark.parametrize("name", COMMON)
def test_fast_path_is_taken_for_common_files(name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert assert_same_or_deferred(studyfiles.sample(name)) is not None


def test_fast_path_is_taken_for_the_generated_ct(generated_ct: Path) -> None:
    header = assert_same_or_deferred(generated_ct)
    assert header is not None and (header.rows, header.columns) == (512, 512)
    assert read_header(generated_ct) == header


def _elements(data: bytes) -> list[tuple[int, int, int]]:
    """Return (offset, length field offset, its width) of the top-level elements of an
    explicit VR LE file whose sequences have defined lengths (the generated CT), meta
    group included."""
    out, pos = [], 132
    while pos + 8 <= len(data):
        tag = struct.unpack_from("<HH", data, pos)
        vr = data[pos + 4 : pos + 6]
        if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"UC", b"UR", b"OF", b"OD", b"OL"):
            out.append((pos, pos + 8, 4))
            length, pos = struct.unpack_from("<L", data, pos + 8)[0], pos + 12
        else:
            out.append((pos, pos + 6, 2))
            length, pos = struct.unpack_from("<H", data, pos + 6)[0], pos + 8
        if tag == (0x7FE0, 0x0010):
            break
        pos += length
    return out


def _check_variant(path: Path, data: bytes) -> bool:
    """Write a variant; assert the fast path is right about it; return whether it was used."""
    path.write_bytes(data)
    fast = quick_header(path, LIMITS)
    if fast is None:
        return False
    expected = slow(path)
    assert not isinstance(expected, DicomRejected), expected.reason
    assert fast == expected
    return True


def test_truncations_never_pass(tmp_path: Path, generated_ct: Path) -> None:
    data = generated_ct.read_bytes()
    pixel_start = _elements(data)[-1][0]
    cuts = sorted({*range(0, pixel_start + 16, 3), *range(len(data) - 40, len(data)),
                   *range(pixel_start, len(data), 4099)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        used = [cut for cut in cuts if _check_variant(tmp_path / "cut.dcm", data[:cut])]
    assert used == []  # every cut loses pixel data the header declares
    # Bytes after the pixel data: a whole trailing element is fine, a partial one is not.
    padding = struct.pack("<HH2sHL", 0xFFFC, 0xFFFC, b"OB", 0, 6) + b"\x00" * 6
    assert _check_variant(tmp_path / "pad.dcm", data + padding)
    for extra in range(1, len(padding)):
        assert not _check_variant(tmp_path / "pad.dcm", data + padding[:extra])


@pytest.mark.parametrize("name", ["generated", "MR_small_implicit.dcm", "liver_1frame.dcm"])
def test_corrupted_lengths_and_bytes_never_disagree(tmp_path: Path, generated_ct: Path,
                                                    name: str) -> None:
    data = generated_ct.read_bytes() if name == "generated" else \
        studyfiles.sample(name).read_bytes()
    head_end = min(len(data), 4000 if name == "liver_1frame.dcm" else 3000)
    variants = []
    if name == "generated":  # every length field: flipped, off by a little, undefined
        for _, at, width in _elements(data):
            old = int.from_bytes(data[at : at + width], "little")
            for new in {old ^ 0xFF, old + 1, old + 2, old - 2, old ^ (0xFF << 8),
                        (1 << 8 * width) - 1, 0}:
                new &= (1 << 8 * width) - 1
                variants.append(data[:at] + new.to_bytes(width, "little") + data[at + width:])
    for at in range(132, head_end, 7):  # single byte flips through the header
        for mask in (0x01, 0x80, 0xFF):
            variants.append(data[:at] + bytes([data[at] ^ mask]) + data[at + 1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        used = sum(_check_variant(tmp_path / "v.dcm", v) for v in variants)
    assert 0 < used < len(variants)  # flips in harmless places keep the fast path


def _with_value(data: bytes, tag: int, vr: bytes, value: bytes) -> bytes:
    """Return the generated CT with one top-level short-VR element set (added if absent)."""
    new = struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr, len(value)) + value
    for pos, at, _ in _elements(data):
        found = struct.unpack_from("<HH", data, pos)
        found_tag = found[0] << 16 | found[1]
        if found_tag < 0x00030000 or found_tag < tag:
            continue
        if found_tag == tag:
            end = at + 2 + struct.unpack_from("<H", data, at)[0]
            return data[:pos] + new + data[end:]
        return data[:pos] + new + data[pos:]
    raise AssertionError("no place for the element")


VALUES = [
    (0x00200013, b"IS", [b"7 ", b" 12", b"+5", b"-3", b"1.0", b"1.5", b"", b"  ", b"1\\2",
                         b"\\2", b"abc", b"007", b"1e3", b"99999999999999999999", b"5\x00",
                         b"5\x00\x00\x00", b"1 \\x"]),
    (0x00201041, b"DS", [b"1.5 ", b".5", b"1.", b"-1e3", b"1E+02", b"nan", b"inf", b"",
                         b"1\\2\\3", b"1\\\\3", b" 2 ", b"1_000", b"0x10", b"1e999"]),
    (0x00200032, b"DS", [b"1\\2\\3", b"1\\2", b"1\\2\\3\\4", b"1\\2\\x", b"1\\2\\3 "]),
    (0x00281050, b"DS", [b"40\\400", b"40", b"", b"40\\"]),
    (0x00100010, b"PN", [b"DOE^JOHN", b"DOE^JOHN^^^", b"A\\B", b"A=B", b"Doe^J==",
                         b" X ", b"X\x00", b"\x00X", b"\xc3\xa9l\xc3\xa8ve", b"X\tY",
                         b"X\x1b(BY"]),
    (0x00080060, b"CS", [b"MR", b"MR\\CT", b"mr ", b"", b" ", b"\x00\x00"]),
    (0x00280301, b"CS", [b"YES", b"yes ", b"NO", b"MAYBE", b""]),
    (0x00080020, b"DA", [b"20200229", b"2020.02.29", b"20201301", b"2020", b"", b"x"]),
    (0x00080030, b"TM", [b"101010", b"10:10:10.5", b"2500", b"1010", b"10.5", b""]),
    (0x00080005, b"CS", [b"ISO_IR 100", b"ISO_IR 192", b"ISO_IR 6", b"", b"GB18030",
                         b"\\ISO 2022 IR 87", b"ISO_IR 100\\ISO_IR 192", b"ISO_IR 144"]),
    (0x00280008, b"IS", [b"1", b"0", b"2", b"-1", b"1\\2", b"+1", b"", b"x", b"1.0"]),
    (0x00280004, b"CS", [b"MONOCHROME1", b"YBR_FULL_422", b"RGB\\X", b""]),
    (0x0020000D, b"UI", [b"1.2.3\x00", b"", b"1.2\\3.4", b" 1.2.3", b"\x00"]),
    (0x00280010, b"US", [b"\x00\x02", b"\x00\x02\x00\x02", b"", b"\x00\x01"]),
    (0x00280002, b"US", [b"\x00\x00", b"\x03\x00", b""]),
]


@pytest.mark.parametrize(("tag", "vr", "values"), VALUES, ids=[f"{t:08X}" for t, *_ in VALUES])
def test_value_conversions_match(tmp_path: Path, generated_ct: Path, tag: int, vr: bytes,
                                 values: list[bytes]) -> None:
    data = generated_ct.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for value in values:
            _check_variant(tmp_path / "v.dcm", _with_value(data, tag, vr, value))
    assert _check_variant(tmp_path / "v.dcm", _with_value(data, tag, vr, values[0]))


def test_a_vr_other_than_the_dictionarys_is_left_to_pydicom(tmp_path: Path,
                                                             generated_ct: Path) -> None:
    path = tmp_path / "fd.dcm"
    path.write_bytes(_with_value(generated_ct.read_bytes(), 0x00281051, b"FD",
                                 struct.pack("<d", 1.0)))
    assert quick_header(path, LIMITS) is None
    assert read_header(path).window_width == 1.0


def test_non_ascii_patient_name_is_left_to_pydicom(tmp_path: Path, generated_ct: Path) -> None:
    name = "Müller^Jürgen".encode("latin-1")
    path = tmp_path / "name.dcm"
    path.write_bytes(_with_value(generated_ct.read_bytes(), 0x00100010, b"PN", name + b" "))
    assert quick_header(path, LIMITS) is None
    header = read_header(path)
    assert header == read_header_pydicom(path) and header.patient_name == "Müller^Jürgen"


def test_frame_limit_is_left_to_pydicom(tmp_path: Path) -> None:
    path = studyfiles.frames_declared_copy("emri_small.dcm", tmp_path / "f.dcm", 10)
    assert quick_header(path, LIMITS) is not None
    assert quick_header(path, ParseLimits(max_frames=9)) is None
    with pytest.raises(DicomRejected, match="too many frames"):
        read_header(path, ParseLimits(max_frames=9))
