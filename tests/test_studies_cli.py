"""The study commands: import-study, verify-storage, deidentify."""

from __future__ import annotations

import json

import pydicom
import pytest
import sqlalchemy as sa

from qaportal.dicom import generate_ct_series
from qaportal.extensions import db
from qaportal.models import Instance
from qaportal.studies.storage import image_store
from tests.factories import make_user
from tests.studyfiles import sample


@pytest.fixture
def runner(app):
    make_user(roles=("radiologist",), email="owner@example.test")
    db.session.commit()
    return app.test_cli_runner()


def _summary(output: str) -> dict:
    return json.loads(output[: output.rindex("}") + 1])


def test_import_study_all_stored_exits_0(runner, tmp_path):
    generate_ct_series(tmp_path / "ct", slices=8)
    result = runner.invoke(args=["import-study", str(tmp_path / "ct"), "--owner",
                                 "owner@example.test"])
    assert result.exit_code == 0, result.output
    summary = _summary(result.output)
    assert set(summary) == {"studies", "stored", "duplicates", "conflicts", "errors"}
    assert summary["stored"] == 8 and summary["errors"] == []
    assert summary["studies"][0]["instances"] == 8


def test_import_study_some_failed_exits_1(runner, tmp_path):
    (tmp_path / "junk.txt").write_text("hello")
    result = runner.invoke(args=["import-study", str(sample("CT_small.dcm")),
                                 str(tmp_path / "junk.txt"), "--owner", "owner@example.test"])
    assert result.exit_code == 1
    summary = _summary(result.output)
    assert summary["stored"] == 1
    assert summary["errors"] == [{"file": str(tmp_path / "junk.txt"), "error": "not a DICOM file"}]


def test_import_study_nothing_stored_exits_2(runner, tmp_path):
    (tmp_path / "junk.txt").write_text("hello")
    result = runner.invoke(args=["import-study", str(tmp_path / "junk.txt"), "--owner",
                                 "owner@example.test"])
    assert result.exit_code == 2
    assert _summary(result.output)["stored"] == 0


def test_import_study_duplicates_only_exits_0(runner):
    args = ["import-study", str(sample("CT_small.dcm")), "--owner", "owner@example.test"]
    runner.invoke(args=args)
    result = runner.invoke(args=args)
    assert result.exit_code == 0
    assert _summary(result.output)["duplicates"] == 1


def test_import_study_unknown_owner_is_one_clear_error(runner):
    result = runner.invoke(args=["import-study", str(sample("CT_small.dcm")), "--owner",
                                 "nobody@example.test"])
    assert result.exit_code == 2
    assert "no active account" in result.output


def test_verify_storage_reports_altered_and_missing_files(runner):
    generate_args = ["import-study", str(sample("CT_small.dcm")), str(sample("MR_small.dcm")),
                     "--owner", "owner@example.test"]
    runner.invoke(args=generate_args)
    ok = runner.invoke(args=["verify-storage"])
    assert ok.exit_code == 0 and "checked 2 files: 0 missing, 0 altered" in ok.output
    first, second = db.session.scalars(sa.select(Instance).order_by(Instance.id)).all()
    store = image_store()
    path = store.path(first.storage_key)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    store.path(second.storage_key).unlink()
    bad = runner.invoke(args=["verify-storage"])
    assert bad.exit_code == 1
    assert f"altered: instance {first.id}" in bad.output
    assert f"missing: instance {second.id}" in bad.output


def test_verify_storage_finds_and_deletes_orphans(runner, tmp_path):
    store = image_store()
    store.put("ab" * 16, sample("CT_small.dcm"))
    found = runner.invoke(args=["verify-storage"])
    assert found.exit_code == 1 and "1 orphaned found" in found.output
    cleaned = runner.invoke(args=["verify-storage", "--delete-orphans"])
    assert cleaned.exit_code == 0 and not store.exists("ab" * 16)


def test_deidentify_command_removes_identity(runner, tmp_path):
    result = runner.invoke(args=["deidentify", str(sample("CT_small.dcm")),
                                 str(tmp_path / "out"), "--pseudonym", "CASE-7"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["written"] == 1
    out = next((tmp_path / "out").glob("*.dcm"))
    ds = pydicom.dcmread(out)
    original = pydicom.dcmread(sample("CT_small.dcm"))
    assert ds.PatientIdentityRemoved == "YES"
    assert str(ds.PatientName) == "CASE-7"
    assert ds.SOPInstanceUID != original.SOPInstanceUID
    assert str(original.PatientName).encode() not in out.read_bytes()


def test_deidentify_reports_bad_files(runner, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "junk.txt").write_text("x")
    result = runner.invoke(args=["deidentify", str(tmp_path / "src"), str(tmp_path / "out")])
    assert result.exit_code == 2
    assert json.loads(result.output)["errors"][0]["file"].endswith("junk.txt")


def test_verify_storage_sweeps_stale_upload_temp_files(runner, app):
    import os
    import time
    from pathlib import Path

    tmp = Path(app.config["UPLOAD_TMP"])
    tmp.mkdir(parents=True, exist_ok=True)
    old, fresh = tmp / "recv-killed", tmp / "recv-in-flight"
    old.write_bytes(b"partial upload")
    fresh.write_bytes(b"a request still running")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    found = runner.invoke(args=["verify-storage"])
    assert found.exit_code == 1 and "1 orphaned found" in found.output
    cleaned = runner.invoke(args=["verify-storage", "--delete-orphans"])
    assert cleaned.exit_code == 0
    assert not old.exists() and fresh.exists()


def test_deidentify_retaining_dates_keeps_an_empty_date_empty(runner, tmp_path):
    """The demo CT's base slice has InstanceCreationDate '': "list index out of range"."""
    result = runner.invoke(args=["deidentify", "--retain-dates", str(sample("693_UNCR.dcm")),
                                 str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["written"] == 1
    ds = pydicom.dcmread(tmp_path / "out" / "000001.dcm")
    assert ds.InstanceCreationDate == "" and ds.LongitudinalTemporalInformationModified == \
        "MODIFIED"
