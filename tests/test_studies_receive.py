"""Zero-copy upload receipt, adoption into the store, rollback, concurrent halves of a study."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from qaportal.dicom import generate_ct_series
from qaportal.extensions import db
from qaportal.models import Instance, Series, Study, UploadBatch
from qaportal.studies import ingest, jobs
from qaportal.studies.storage import image_store
from tests.factories import make_user
from tests.studyfiles import sample


def _post_files(client, url, paths):
    handles = [(open(p, "rb"), f"ct/{Path(p).name}") for p in paths]
    try:
        return client.post(url, data={"files": handles}, content_type="multipart/form-data")
    finally:
        for fh, _ in handles:
            fh.close()


def _leftovers(app) -> list[Path]:
    """Files left in the upload folder or half-written in the store."""
    tmp = Path(app.config["UPLOAD_TMP"])
    left = [p for p in tmp.rglob("*") if p.is_file()] if tmp.exists() else []
    return left + list(Path(app.config["IMAGE_ROOT"]).glob("??/??/.tmp-*"))


def _batch_url(client) -> str:
    return client.post("/studies/upload/batches").get_json()["files_url"]


def test_uploaded_files_are_adopted_with_their_hash_and_no_temp_left(app, client, login_as,
                                                                    tmp_path):
    login_as("radiologist")
    files = generate_ct_series(tmp_path / "ct", slices=6)
    res = _post_files(client, _batch_url(client), files)
    assert res.status_code == 200 and res.get_json()["stored"] == 6
    store = image_store()
    by_hash = {hashlib.sha256(f.read_bytes()).hexdigest(): f for f in files}
    rows = db.session.scalars(sa.select(Instance)).all()
    assert len(rows) == 6
    for row in rows:
        data = store.path(row.storage_key).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row.sha256
        assert data == by_hash[row.sha256].read_bytes() and row.size_bytes == len(data)
    assert sorted(store.iter_keys()) == sorted(r.storage_key for r in rows)
    assert _leftovers(app) == []


def test_reupload_is_a_duplicate_and_its_received_file_is_removed(app, client, login_as):
    login_as("radiologist")
    url = _batch_url(client)
    _post_files(client, url, [sample("CT_small.dcm")])
    again = _post_files(client, url, [sample("CT_small.dcm"), sample("CT_small.dcm")])
    assert (again.get_json()["stored"], again.get_json()["duplicates"]) == (0, 2)
    assert len(list(image_store().iter_keys())) == 1
    assert _leftovers(app) == []


def test_failure_in_the_database_burst_removes_the_adopted_files(app, client, login_as,
                                                                tmp_path, monkeypatch):
    login_as("radiologist")
    url = _batch_url(client)
    files = generate_ct_series(tmp_path / "ct", slices=4)

    def fail(self, run):
        raise RuntimeError("simulated failure after the rows were added")

    monkeypatch.setattr(ingest.Ingester, "_record", fail)
    with pytest.raises(RuntimeError):
        _post_files(client, url, files)
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Instance)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Study)) == 0
    assert list(image_store().iter_keys()) == []
    assert _leftovers(app) == []


def test_adopt_moves_the_file_and_hashes_it_when_not_told(tmp_path):
    from qaportal.dicom import FilesystemStore, new_key

    store = FilesystemStore(tmp_path / "images")
    src = tmp_path / "incoming.dcm"
    data = sample("CT_small.dcm").read_bytes()
    src.write_bytes(data)
    key = new_key()
    stored = store.adopt(key, src)
    assert not src.exists()
    assert stored.sha256 == hashlib.sha256(data).hexdigest() and stored.size == len(data)
    assert store.read_verified(key, stored.sha256) == data
    assert list(store.root.glob("??/??/.tmp-*")) == []


def _import_in_thread(app, inputs, owner_id, batch_id, barrier, errors):
    with app.app_context():
        try:
            barrier.wait(timeout=10)
            jobs.import_files(inputs, owner_id, batch_id)
        except Exception as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(repr(exc))
        finally:
            db.session.remove()


@pytest.mark.parametrize("same_batch", [True, False], ids=["one-batch", "two-batches"])
def test_two_halves_of_one_new_study_uploaded_at_once(app, tmp_path, same_batch):
    """Both halves land in one study: chunks of one batch take turns at the rows, two
    batches collide on the study's UID and the loser writes its rows again."""
    owner = make_user(roles=("radiologist",))
    db.session.commit()
    files = generate_ct_series(tmp_path / "ct", slices=40)
    halves = [[(f.name, f) for f in files[:20]], [(f.name, f) for f in files[20:]]]
    first = jobs.new_batch(owner, "test")
    batches = [first.id, first.id if same_batch else jobs.new_batch(owner, "test").id]
    barrier = threading.Barrier(2)
    errors: list[str] = []
    threads = [threading.Thread(target=_import_in_thread,
                                args=(app, half, owner.id, batch_id, barrier, errors))
               for half, batch_id in zip(halves, batches, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    db.session.expire_all()
    study = db.session.scalars(sa.select(Study)).one()
    assert (study.instance_count, study.series_count) == (40, 1)
    assert study.size_bytes == sum(f.stat().st_size for f in files)
    series = db.session.scalars(sa.select(Series)).one()
    assert (series.instance_count, series.frame_count) == (40, 40)
    keys = set(db.session.scalars(sa.select(Instance.storage_key)))
    assert len(keys) == 40 and set(image_store().iter_keys()) == keys
    stored = db.session.scalars(sa.select(UploadBatch.stored)).all()
    assert sum(stored) == 40
    if same_batch:
        batch = db.session.get(UploadBatch, first.id)
        assert batch.study_ids == [study.id] and batch.errors == []


def test_received_files_start_their_writeback_only_for_a_store_that_adopts_them(
        app, tmp_path):
    """The filesystem store renames a received file in and syncs it: its writing to disk
    starts as soon as it is received. A PACS store reads and sends it: no writeback."""
    with app.test_request_context("/dicomweb/studies", method="POST"):
        from flask import request

        received = request.receive_file()
        received.write(b"DICM" * 1000)
        received.finish()
        assert received._writeback
        assert received.path.read_bytes() == b"DICM" * 1000
        assert received.sha256 == hashlib.sha256(b"DICM" * 1000).hexdigest()
    app.config.update(IMAGE_STORE="dicomweb", IMAGE_STORE_URL="http://127.0.0.1:9/dicom-web")
    app.extensions.pop("qaportal_image_store", None)
    try:
        with app.test_request_context("/dicomweb/studies", method="POST"):
            from flask import request

            assert not request.receive_file()._writeback
    finally:
        app.extensions.pop("qaportal_image_store", None)
