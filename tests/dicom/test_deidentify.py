"""De-identification: planted sentinels must not survive; UIDs and dates stay consistent."""

from __future__ import annotations

import datetime as dt
import io
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.datadict import dictionary_VR, keyword_dict
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from qaportal.dicom import (
    DeidContext,
    DeidOption,
    date_shift_for,
    deidentify_dataset,
    deidentify_file,
    generate_ct_series,
    read_header,
    render_frame,
)
from qaportal.dicom.annex_e import RULES

FileLookup = Callable[[str], Path]
SECRET = b"test-secret-0123456789abcdef0123"
TEXT_VRS = {"AE", "CS", "LO", "SH", "ST", "LT", "UT", "UC", "UR"}
TOKENS = (b"SENTINEL", b"18880808", b"424242", b"98765432")
ALL_OPTIONS = frozenset(DeidOption)
OPTION_RETAINED = {r.keyword for r in RULES.values() if r.option in ("patient", "device")}


class Planter:
    """Write unique sentinel values of the right VR into a dataset."""

    def __init__(self) -> None:
        self.n = 0

    def value(self, vr: str) -> str:
        self.n += 1
        return {
            "PN": f"SENTINEL^N{self.n:04d}",
            "DA": "18880808",
            "DT": "18880808121212.424242",
            "TM": "121212.424242",
            "UI": f"1.2.3.98765432.{self.n}",
        }.get(vr, f"SENTINEL_{self.n:04d}")

    def identifying_item(self) -> Dataset:
        """Return a sequence item full of identifying values, a private tag and a sub-item."""
        item = Dataset()
        item.PatientName = self.value("PN")
        item.AccessionNumber = self.value("SH")
        item.ReferencedSOPInstanceUID = self.value("UI")
        item.InstitutionName = self.value("LO")
        item.add_new(_unlisted_pn_tag(), "PN", self.value("PN"))
        item.private_block(0x0011, "SENTINEL_CREATOR", create=True).add_new(
            0x01, "LO", self.value("LO")
        )
        sub = Dataset()
        sub.PerformingPhysicianName = self.value("PN")
        sub.StudyDate = self.value("DA")
        sub.CodeValue, sub.CodingSchemeDesignator, sub.CodeMeaning = "121320", "DCM", "Image"
        item.PurposeOfReferenceCodeSequence = Sequence([sub])
        return item

    def plant(self, ds: Dataset) -> int:
        """Fill every non-K attribute of Annex E, nested sequences and private tags."""
        planted = 0
        for tag, rule in RULES.items():
            vr = dictionary_VR(tag)
            if rule.action == "K" or tag >> 16 in (0x0000, 0x0002) or " " in vr:
                continue
            if vr == "SQ":
                ds.add_new(tag, vr, Sequence([self.identifying_item()]))
            elif vr in TEXT_VRS | {"PN", "DA", "DT", "TM", "UI"}:
                ds.add_new(tag, vr, self.value(vr))
            else:
                continue
            planted += 1
        # Reference sequences are kept and walked (X/Z/U*): identifying values inside them.
        ds.ReferencedImageSequence = Sequence([self.identifying_item()])
        ds.SourceImageSequence = Sequence([self.identifying_item(), self.identifying_item()])
        block = ds.private_block(0x0009, "SENTINEL_CREATOR", create=True)
        block.add_new(0x10, "LO", self.value("LO"))
        block.add_new(0x11, "OB", b"SENTINEL_BYTES")
        block.add_new(0x12, "SQ", Sequence([self.identifying_item()]))
        ds.DateOfSecondaryCapture = self.value("DA")  # an unlisted date
        ds.add_new(0x60004000, "LT", self.value("LT"))  # overlay comments
        ds.add_new(0x50000022, "LO", self.value("LO"))  # retired curve description
        ds.file_meta.SourceApplicationEntityTitle = "SENTINEL_AE"
        ds.preamble = b"SENTINEL_PREAMBLE".ljust(128, b"\0")
        return planted


def _unlisted_pn_tag() -> int:
    """Return a standard PN attribute the table does not list (covered by the PN fallback)."""
    for tag in keyword_dict.values():
        if tag not in RULES and dictionary_VR(tag) == "PN" and tag >> 16 > 0x0008:
            return tag
    raise AssertionError("no unlisted PN attribute found")


def _planted_file(src: Path, dest: Path) -> tuple[Path, int]:
    ds = dcmread(src)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        planted = Planter().plant(ds)
        ds.save_as(dest, enforce_file_format=True)
    raw = dest.read_bytes()
    assert all(t in raw for t in TOKENS)
    return dest, planted


def _sentinel_keywords(ds: Dataset, tokens: tuple[bytes, ...]) -> set[str]:
    found: set[str] = set()

    def visit(d: Dataset, elem: DataElement) -> None:
        if elem.VR != "SQ" and any(t.decode() in str(elem.value) for t in tokens):
            found.add(elem.keyword or str(elem.tag))

    ds.walk(visit)
    return found


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm"])
def test_no_sentinel_survives(tmp_path: Path, dicom_file: FileLookup, name: str) -> None:
    src, planted = _planted_file(dicom_file(name), tmp_path / "planted.dcm")
    assert planted >= 150
    original = dcmread(dicom_file(name), stop_before_pixels=True)
    out = tmp_path / "deid.dcm"
    ctx = DeidContext(secret=SECRET, pseudonym="QA-CASE-0001")
    result = deidentify_file(src, out, ctx)
    raw = out.read_bytes()
    for token in TOKENS:
        assert token not in raw, token
    for value in (original.PatientName, original.PatientID):
        assert str(value).encode() not in raw
    assert original.SOPInstanceUID.encode() not in raw
    assert result.private_removed > 0
    ds = dcmread(out)
    assert ds.PatientName == "QA-CASE-0001" and ds.PatientID == "QA-CASE-0001"
    assert not any(elem.tag.is_private for elem in ds.iterall())


def test_options_retain_only_their_attributes(tmp_path: Path, ct_small: Path) -> None:
    src, _ = _planted_file(ct_small, tmp_path / "planted.dcm")
    out = tmp_path / "deid.dcm"
    ctx = DeidContext(secret=SECRET, options=ALL_OPTIONS, date_shift_days=-30)
    deidentify_file(src, out, ctx)
    assert b"18880808" not in out.read_bytes()  # every retained date was shifted
    # Times of day are kept under the modified-dates option (the shift is in whole days),
    # so only the text and UID sentinels are checked here.
    survivors = _sentinel_keywords(dcmread(out), (b"SENTINEL", b"98765432"))
    assert survivors  # the options really keep something
    assert survivors <= OPTION_RETAINED, survivors - OPTION_RETAINED


def test_marks_and_file_meta(tmp_path: Path, ct_small: Path) -> None:
    out = tmp_path / "deid.dcm"
    deidentify_file(ct_small, out, DeidContext(secret=SECRET))
    ds = dcmread(out)
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    codes = [(c.CodeValue, c.CodingSchemeDesignator) for c in ds.DeidentificationMethodCodeSequence]
    assert codes == [("113100", "DCM")]
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    assert ds.preamble == bytes(128)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"  # registered UIDs are kept
    h = read_header(out)  # still a valid, complete instance
    assert h.has_pixel_data and h.patient_name == "ANONYMOUS"
    assert render_frame(out) == render_frame(ct_small)  # pixels untouched


def test_option_codes(ct_small: Path) -> None:
    ds = dcmread(ct_small)
    deidentify_dataset(ds, DeidContext(secret=SECRET, options=ALL_OPTIONS, date_shift_days=-1))
    codes = [c.CodeValue for c in ds.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113107", "113108", "113109"]
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"


def test_uids_consistent_across_files_and_calls(tmp_path: Path, ct_small: Path) -> None:
    a, b = generate_ct_series(tmp_path / "in", slices=2, base=ct_small)
    ctx = DeidContext(secret=SECRET)
    ra = deidentify_file(a, tmp_path / "a.dcm", ctx)
    rb = deidentify_file(b, tmp_path / "b.dcm", ctx)
    da, db = dcmread(tmp_path / "a.dcm"), dcmread(tmp_path / "b.dcm")
    assert da.StudyInstanceUID == db.StudyInstanceUID == ra.new_study_uid == rb.new_study_uid
    assert da.SeriesInstanceUID == db.SeriesInstanceUID
    assert da.FrameOfReferenceUID == db.FrameOfReferenceUID
    assert da.SOPInstanceUID != db.SOPInstanceUID
    assert ctx.uid_map[ra.old_study_uid] == ra.new_study_uid
    for uid in (da.StudyInstanceUID, da.SOPInstanceUID):
        assert re.fullmatch(r"2\.25\.[1-9][0-9]*", uid) and len(uid) <= 64
    # A later call with the same secret links back to the same study; another secret does not.
    again = deidentify_dataset(dcmread(a), DeidContext(secret=SECRET))
    assert again.new_sop_uid == ra.new_sop_uid
    other = deidentify_dataset(dcmread(a), DeidContext(secret=b"another secret"))
    assert other.new_study_uid != ra.new_study_uid


def test_dates_shifted_consistently(ct_small: Path) -> None:
    orig = dcmread(ct_small)
    ds = dcmread(ct_small)
    shift = date_shift_for(SECRET, orig.StudyInstanceUID)
    assert shift == date_shift_for(SECRET, orig.StudyInstanceUID) and -3650 <= shift <= -1
    ctx = DeidContext(
        secret=SECRET, options=frozenset({DeidOption.RETAIN_MODIFIED_DATES}), date_shift_days=shift
    )
    deidentify_dataset(ds, ctx)

    def day(value: str) -> dt.date:
        return dt.datetime.strptime(value, "%Y%m%d").date()

    for keyword in ("StudyDate", "SeriesDate", "ContentDate", "InstanceCreationDate"):
        assert day(ds[keyword].value) - day(orig[keyword].value) == dt.timedelta(days=shift)
    assert day(ds.StudyDate) - day(ds.ContentDate) == day(orig.StudyDate) - day(orig.ContentDate)
    assert ds.StudyTime == orig.StudyTime  # whole-day shift keeps the time of day


def test_dates_removed_without_option(ct_small: Path) -> None:
    ds = dcmread(ct_small)
    deidentify_dataset(ds, DeidContext(secret=SECRET))
    assert ds.StudyDate == "" and ds.StudyTime == "" and ds.ContentDate == ""
    assert "SeriesDate" not in ds and "InstanceCreationDate" not in ds


@pytest.mark.parametrize("retain", [False, True])
def test_patient_characteristics_option(ct_small: Path, retain: bool) -> None:
    ds = dcmread(ct_small)
    ds.PatientSex, ds.PatientAge, ds.PatientWeight = "F", "054Y", "61.5"
    options = frozenset({DeidOption.RETAIN_PATIENT_CHARACTERISTICS}) if retain else frozenset()
    deidentify_dataset(ds, DeidContext(secret=SECRET, options=options))
    if retain:
        assert (ds.PatientSex, ds.PatientAge, ds.PatientWeight) == ("F", "054Y", 61.5)
    else:
        assert ds.PatientSex == "" and "PatientAge" not in ds and "PatientWeight" not in ds


@pytest.mark.parametrize("retain", [False, True])
def test_device_identity_option(ct_small: Path, retain: bool) -> None:
    ds = dcmread(ct_small)
    ds.DeviceSerialNumber, ds.StationName = "SN-123", "CT01"
    options = frozenset({DeidOption.RETAIN_DEVICE_IDENTITY}) if retain else frozenset()
    deidentify_dataset(ds, DeidContext(secret=SECRET, options=options))
    assert ("StationName" in ds) is retain
    assert ds.DeviceSerialNumber == ("SN-123" if retain else "")


def test_burned_in_flag(ct_small: Path, dicom_file: FileLookup) -> None:
    us = deidentify_dataset(dcmread(dicom_file("examples_ybr_color.dcm")), DeidContext(SECRET))
    assert (us.burned_in, us.pixel_review_needed) == ("UNKNOWN", True)
    ct = deidentify_dataset(dcmread(ct_small), DeidContext(SECRET))
    assert (ct.burned_in, ct.pixel_review_needed) == ("UNKNOWN", False)
    for flag, review in (("YES", True), ("NO", False)):
        ds = dcmread(ct_small)
        ds.BurnedInAnnotation = flag
        result = deidentify_dataset(ds, DeidContext(SECRET))
        assert (result.burned_in, result.pixel_review_needed) == (flag, review)
        assert ds.BurnedInAnnotation == flag


def test_overlay_data_is_removed_and_flagged_for_pixel_review(dicom_file: FileLookup) -> None:
    """Table E.1-1: Overlay Data (60xx,3000) is X; like BurnedInAnnotation, pixels need a look."""
    ds = dcmread(dicom_file("MR-SIEMENS-DICOM-WithOverlays.dcm"))
    assert 0x60003000 in ds and "BurnedInAnnotation" not in ds
    result = deidentify_dataset(ds, DeidContext(SECRET))
    assert result.has_overlays and result.pixel_review_needed
    assert "overlay" in (result.review_reason or "")
    assert 0x60003000 not in ds
    buf = io.BytesIO()
    ds.save_as(buf)
    assert np.asarray(dcmread(io.BytesIO(buf.getvalue())).pixel_array).any()


def test_table_covers_the_profile() -> None:
    actions = {r.keyword: r.action for r in RULES.values()}
    assert len(RULES) >= 300
    assert actions["PatientName"] == "Z" and actions["StudyInstanceUID"] == "U"
    assert actions["AccessionNumber"] == "Z" and actions["OtherPatientIDsSequence"] == "X"
    assert actions["SOPClassUID"] == "K"
