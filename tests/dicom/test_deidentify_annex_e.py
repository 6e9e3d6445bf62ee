"""Annex E against the standard's own Table E.1-1, the named survivors, empty dates."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from qaportal.dicom import DeidContext, DeidOption, deidentify_dataset
from qaportal.dicom.annex_e import RULES
from qaportal.dicom.annex_e_standard import EDITION, load_rows

SECRET = b"test-secret-0123456789abcdef0123"
ALL_OPTIONS = frozenset(DeidOption)


def test_every_row_of_the_standard_table_is_handled_as_the_standard_allows() -> None:
    rows = load_rows()
    assert EDITION == "2024b" and len(rows) > 600
    for row in rows:
        assert tag_for_keyword(row.keyword) == row.tag, row  # the data names real tags
        rule = RULES.get(row.tag)
        assert rule is not None, f"{row.keyword} not handled"
        allowed = row.allowed
        # Removing is at least as strong as a dummy or an empty value; a reference
        # sequence (X/Z/U*) is kept and walked so the UIDs inside it are replaced.
        ok = rule.action in allowed or (rule.action == "X" and allowed & {"D", "Z", "U"}) \
            or (row.basic == "X/Z/U*" and rule.action == "K")
        assert ok, f"{row.keyword}: {rule.action} where the standard says {row.basic}"
        # An option may keep an attribute only where the standard's option column says so.
        assert rule.option in (None, row.chosen_option()), f"{row.keyword}: {rule.option}"


@pytest.mark.parametrize(("keyword", "action"), [
    ("ScheduledProcedureStepID", "X"),
    ("LongDeviceDescription", "X"),
    ("SourceSerialNumber", "X"),
    ("UDISequence", "X"),
    ("UniqueDeviceIdentifier", "X"),
    ("EncapsulatedDocument", "D"),
])
def test_the_rows_that_were_missing_are_in_the_table(keyword: str, action: str) -> None:
    row = {r.keyword: r for r in load_rows()}[keyword]
    assert action in row.allowed
    assert RULES[tag_for_keyword(keyword)].action in row.allowed | {"X"}


def _planted(src: Path) -> Dataset:
    """CT_small carrying a sentinel in every element that once survived de-identification."""
    ds = dcmread(src)
    ds.ScheduledProcedureStepID = "SENTINEL_SPS"
    ds.LongDeviceDescription = "SENTINEL_DEVICE long description"
    ds.SourceSerialNumber = "SENTINEL_SRCSN"
    udi = Dataset()
    udi.UniqueDeviceIdentifier = "SENTINEL_UDI_IN_SEQ"
    ds.UDISequence = Sequence([udi])
    ds.UniqueDeviceIdentifier = "SENTINEL_UDI"
    ds.StorageMediaFileSetID = "SENTINEL_CD"
    ds.EncapsulatedDocument = b"%PDF-1.4 SENTINEL_PDF report of SMITH^JOHN"
    ds.file_meta.SourcePresentationAddress = "https://SENTINEL-host.example/pacs"
    ds.file_meta.SendingPresentationAddress = "https://SENTINEL-sender.example/"
    return ds


@pytest.mark.parametrize("options", [
    frozenset(), ALL_OPTIONS - {DeidOption.RETAIN_DEVICE_IDENTITY},
])
def test_named_survivors_are_gone_after_deidentification(ct_small: Path, options) -> None:
    ds = _planted(ct_small)
    deidentify_dataset(ds, DeidContext(SECRET, options=options))
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    data = out.getvalue()
    assert b"SENTINEL" not in data and b"SMITH" not in data
    back = dcmread(io.BytesIO(data))
    for keyword in ("ScheduledProcedureStepID", "LongDeviceDescription", "SourceSerialNumber",
                    "UDISequence", "UniqueDeviceIdentifier", "StorageMediaFileSetID"):
        assert keyword not in back, keyword
    assert not back.get("EncapsulatedDocument")
    assert "SourcePresentationAddress" not in back.file_meta


def test_device_identity_option_keeps_the_device_rows(ct_small: Path) -> None:
    ds = _planted(ct_small)
    deidentify_dataset(ds, DeidContext(SECRET, options=frozenset(
        {DeidOption.RETAIN_DEVICE_IDENTITY})))
    assert ds.UniqueDeviceIdentifier == "SENTINEL_UDI"  # E=K in the standard's table
    assert ds.SourceSerialNumber == "SENTINEL_SRCSN"
    assert "ScheduledProcedureStepID" not in ds and "LongDeviceDescription" not in ds


@pytest.mark.parametrize("keyword", ["InstanceCreationDate", "StudyDate", "AcquisitionDateTime"])
def test_an_empty_date_survives_retained_dates(ct_small: Path, keyword: str) -> None:
    """A blank Type 2 date once crashed with "list index out of range"."""
    ds = dcmread(ct_small)
    setattr(ds, keyword, "")
    ds.ContentDate = "20040119"
    ctx = DeidContext(SECRET, options=frozenset({DeidOption.RETAIN_MODIFIED_DATES}),
                      date_shift_days=-10)
    deidentify_dataset(ds, ctx)
    assert ds.get(keyword, "") == ""
    assert ds.ContentDate == "20040109"
    ds.save_as(io.BytesIO(), enforce_file_format=True)


def test_keywords_of_the_data_file_are_pydicom_keywords() -> None:
    for row in load_rows():
        assert keyword_for_tag(row.tag) == row.keyword
