"""Ingest: grouping, duplicates, conflicts, bad input, crash safety, storage integrity."""

from __future__ import annotations

import zipfile

import pytest
import sqlalchemy as sa

from qaportal.dicom import generate_ct_series, read_header
from qaportal.extensions import db
from qaportal.models import Instance, Series, Study, StudyAccess, UploadBatch
from qaportal.studies import jobs
from qaportal.studies.storage import image_store
from tests.factories import make_user
from tests.studyfiles import copy_sample, modified_copy, sample, truncated_copy


@pytest.fixture
def owner(app):
    user = make_user(roles=("radiologist",))
    db.session.commit()
    return user


def run_import(owner, inputs):
    batch = jobs.new_batch(owner, "cli")
    jobs.import_files(inputs, owner.id, batch.id)
    return db.session.get(UploadBatch, batch.id)


def test_series_from_generated_study_grouped_and_ordered(owner, tmp_path):
    files = generate_ct_series(tmp_path / "ct", slices=25)
    batch = run_import(owner, [tmp_path / "ct"])
    assert batch.stored == 25 and not batch.errors
    study = db.session.scalars(sa.select(Study)).one()
    assert study.series_count == 1 and study.instance_count == 25
    assert study.modalities == "CT"
    assert study.size_bytes == sum(f.stat().st_size for f in files)
    positions = [i.slice_position for i in study.series[0].instances]
    assert None not in positions and len(set(positions)) == 25


def test_metadata_kept_for_display(owner, tmp_path):
    run_import(owner, [sample("CT_small.dcm")])
    study = db.session.scalars(sa.select(Study)).one()
    header = read_header(sample("CT_small.dcm"))
    assert study.study_uid == header.study_uid
    assert study.patient_name == header.patient_name and study.patient_name
    assert study.patient_id == header.patient_id
    assert study.study_date == header.study_date
    inst = db.session.scalars(sa.select(Instance)).one()
    assert (inst.rows, inst.columns) == (128, 128)
    assert inst.transfer_syntax_uid == header.transfer_syntax_uid
    assert inst.photometric_interpretation == "MONOCHROME2"


def test_study_arriving_in_two_uploads_is_one_study(owner, tmp_path):
    generate_ct_series(tmp_path / "ct", slices=10, study_uid="1.2.826.0.1.3680043.9.7.1")
    files = sorted((tmp_path / "ct").iterdir())
    run_import(owner, files[:4])
    run_import(owner, files[4:])
    study = db.session.scalars(sa.select(Study)).one()
    assert study.instance_count == 10 and study.series_count == 1


def test_identical_reupload_is_a_duplicate_stored_once(owner, tmp_path):
    run_import(owner, [sample("CT_small.dcm")])
    again = run_import(owner, [sample("CT_small.dcm"), sample("CT_small.dcm")])
    assert (again.stored, again.duplicates, again.conflicts) == (0, 2, 0)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Instance)) == 1
    assert jobs.exit_code(again) == 0


def test_same_sop_uid_with_other_content_is_a_conflict_and_never_overwrites(owner, tmp_path):
    run_import(owner, [sample("CT_small.dcm")])
    original_sha = db.session.scalars(sa.select(Instance.sha256)).one()
    changed = modified_copy("CT_small.dcm", tmp_path / "changed.dcm", PatientName="OTHER^NAME")
    batch = run_import(owner, [changed])
    assert batch.conflicts == 1 and batch.stored == 0
    assert batch.errors[0]["file"] == "changed.dcm"
    assert "conflict" in batch.errors[0]["error"]
    assert db.session.scalars(sa.select(Instance.sha256)).one() == original_sha
    assert jobs.exit_code(batch) == 2


def test_bad_files_are_rejected_by_name_while_the_rest_is_stored(owner, tmp_path):
    folder = tmp_path / "upload"
    generate_ct_series(folder / "ct", slices=5)
    (folder / "notes.txt").write_text("not an image")
    truncated_copy("CT_small.dcm", folder / "broken.dcm")
    ds_path = modified_copy("MR_small.dcm", folder / "nouid.dcm", PatientName="X")
    import pydicom

    ds = pydicom.dcmread(ds_path)
    del ds.SOPInstanceUID
    ds.save_as(ds_path)
    batch = run_import(owner, [folder])
    assert batch.stored == 5
    reasons = {e["file"].rsplit("/", 1)[-1]: e["error"] for e in batch.errors}
    assert reasons["notes.txt"] == "not a DICOM file"
    assert "truncated" in reasons["broken.dcm"]
    assert "SOPInstanceUID" in reasons["nouid.dcm"]
    assert jobs.exit_code(batch) == 1


def test_unsafe_zip_is_refused_and_good_zip_is_imported(owner, tmp_path):
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.write(sample("CT_small.dcm"), "study/CT_small.dcm")
        zf.write(sample("MR_small.dcm"), "study/MR_small.dcm")
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../escape.dcm", sample("CT_small.dcm").read_bytes())
    batch = run_import(owner, [good, evil])
    assert batch.stored == 2
    assert any(e["file"].startswith("evil.zip") for e in batch.errors)
    assert not (tmp_path.parent / "escape.dcm").exists()


def test_files_are_stored_by_internal_key_with_their_hash(owner, app, tmp_path):
    run_import(owner, [sample("CT_small.dcm")])
    inst = db.session.scalars(sa.select(Instance)).one()
    store = image_store()
    path = store.path(inst.storage_key)
    assert path.is_file() and str(path).startswith(app.config["IMAGE_ROOT"])
    header = read_header(sample("CT_small.dcm"))
    assert header.patient_name not in str(path) and header.sop_uid not in str(path)
    import hashlib

    assert hashlib.sha256(path.read_bytes()).hexdigest() == inst.sha256


def test_failed_transaction_leaves_no_files_and_no_rows(owner, app, tmp_path, monkeypatch):
    """A crash after storing some files rolls back the rows and removes the files."""
    from qaportal.studies import ingest

    calls = {"n": 0}
    real = ingest.Ingester._ingest_one

    def crash_on_third(self, item, header):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated crash")
        return real(self, item, header)

    monkeypatch.setattr(ingest.Ingester, "_ingest_one", crash_on_third)
    generate_ct_series(tmp_path / "ct", slices=5)
    batch = jobs.new_batch(owner, "cli")
    with pytest.raises(RuntimeError):
        jobs.import_files([tmp_path / "ct"], owner.id, batch.id)
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Instance)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Series)) == 0
    assert not list(image_store().iter_keys())


def test_a_failure_after_the_commit_never_deletes_committed_files(owner, monkeypatch):
    """The callers' error path discards the run's files; once committed, they must stay."""
    from qaportal.feeds import reads

    def fail(*args, **kwargs):
        raise RuntimeError("simulated failure after the commit")

    monkeypatch.setattr(reads, "match_after_ingest", fail)
    batch = jobs.new_batch(owner, "cli")
    with pytest.raises(RuntimeError):
        jobs.import_files([sample("CT_small.dcm")], owner.id, batch.id)
    db.session.rollback()
    inst = db.session.scalars(sa.select(Instance)).one()
    assert image_store().path(inst.storage_key).is_file()


def test_uploading_a_study_someone_else_stored_makes_the_uploaders_own_copy(app, tmp_path):
    first = make_user(roles=("radiologist",))
    second = make_user(roles=("radiologist",))
    db.session.commit()
    run_import(first, [sample("CT_small.dcm")])
    batch = run_import(second, [copy_sample("CT_small.dcm", tmp_path)])
    assert (batch.stored, batch.duplicates, batch.conflicts) == (1, 0, 0)
    mine, theirs = db.session.scalars(sa.select(Study).order_by(Study.id)).all()
    assert mine.study_uid == theirs.study_uid
    assert (mine.owner_id, theirs.owner_id) == (first.id, second.id)
    assert batch.study_ids == [theirs.id]
    assert mine.instance_count == theirs.instance_count == 1
    assert mine.series[0].id != theirs.series[0].id
    assert mine.deid_key != theirs.deid_key and mine.pseudonym != theirs.pseudonym
    assert db.session.scalars(sa.select(StudyAccess)).all() == []
    again = run_import(second, [copy_sample("CT_small.dcm", tmp_path / "again")])
    assert (again.stored, again.duplicates) == (0, 1)  # duplicates: within one owner
    assert again.study_ids == [theirs.id]


def test_same_series_uid_in_two_of_my_studies_stays_in_each_study(owner, tmp_path):
    a = modified_copy("CT_small.dcm", tmp_path / "a.dcm", StudyInstanceUID="2.25.1",
                      SOPInstanceUID="2.25.11")
    b = modified_copy("CT_small.dcm", tmp_path / "b.dcm", StudyInstanceUID="2.25.2",
                      SOPInstanceUID="2.25.22")
    run_import(owner, [a])
    run_import(owner, [b])
    one, two = db.session.scalars(sa.select(Study).order_by(Study.study_uid)).all()
    assert [s.study_id for s in one.series] == [one.id]
    assert [s.study_id for s in two.series] == [two.id]
    assert one.instance_count == two.instance_count == 1


def test_burned_in_prone_modality_is_flagged(owner):
    run_import(owner, [sample("examples_ybr_color.dcm")])
    study = db.session.scalars(sa.select(Study)).one()
    assert study.modalities == "US" and study.burned_in_suspected


def test_modalities_follow_the_series_added_in_later_uploads(owner, tmp_path):
    """A study's modality list is rewritten when an upload adds a series to it, and left
    as it is by an upload adding files to series it has already."""
    uid = "1.2.826.0.1.3680043.9.7.42"
    ct = generate_ct_series(tmp_path / "ct", slices=3, study_uid=uid)
    run_import(owner, ct[:2])
    study = db.session.scalars(sa.select(Study)).one()
    assert study.modalities == "CT"
    mr = modified_copy("CT_small.dcm", tmp_path / "mr.dcm", StudyInstanceUID=uid,
                       SeriesInstanceUID="1.2.826.0.1.3680043.9.7.43", Modality="MR",
                       PatientID=read_header(ct[0]).patient_id,
                       PatientName=read_header(ct[0]).patient_name)
    batch = run_import(owner, [mr])
    assert batch.stored == 1 and not batch.errors
    db.session.refresh(study)
    assert study.modalities == "CT/MR" and study.series_count == 2
    run_import(owner, ct[2:])  # a file of the CT series already there
    db.session.refresh(study)
    assert study.modalities == "CT/MR" and study.instance_count == 4
