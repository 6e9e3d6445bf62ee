"""A PACS as the image store: the DICOMweb store against Debian's Orthanc, and the portal
(upload, study page, viewer, WADO-RS, verify-storage) with it configured."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pydicom
import pytest
import sqlalchemy as sa

from qaportal import create_app
from qaportal.config import ConfigError
from qaportal.dicom import StoredFileCorrupt, StoredFileMissing, generate_ct_series, new_key
from qaportal.dicom.dicomweb_store import DicomWebStore, MemoryIndex
from qaportal.dicom.store import served_copy
from qaportal.extensions import db
from qaportal.models import Instance, PacsObject
from qaportal.studies.storage import image_store
from tests import orthanc as orthanc_peer
from tests.conftest import make_test_app
from tests.dicomweb_helpers import DICOM_ANY, ingest, parse_multipart
from tests.factories import DEFAULT_PASSWORD, make_user


@pytest.fixture
def archive():
    """A fresh Orthanc on a loopback port, with its own folder."""
    reason = orthanc_peer.unavailable()
    if reason:
        pytest.skip(reason)
    with orthanc_peer.Orthanc() as peer:
        yield peer


def _store(archive, **kw) -> DicomWebStore:
    return DicomWebStore(archive.url + "/dicom-web", MemoryIndex(), **kw)


def _orthanc_id(archive, sop_uid: str) -> str:
    (found,) = [e for e in archive.post("/tools/lookup", sop_uid).json()
                if e["Type"] == "Instance"]
    return found["ID"]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_round_trip_gives_the_bytes_stored(archive, tmp_path):
    store = _store(archive)
    files = generate_ct_series(tmp_path / "ct", slices=3)
    for path in files:
        key = new_key()
        stored = store.put(key, path, sync=False)
        data = path.read_bytes()
        assert stored.sha256 == _sha(data) and stored.size == len(data)
        assert store.read_verified(key, stored.sha256) == data  # preamble and all
        with store.open(key) as fp:
            assert fp.read() == data
        assert store.exists(key)
    assert store.unmapped_instances() == []


def test_files_put_without_sync_go_in_one_request_at_sync(archive, tmp_path):
    store = _store(archive, verify_writes=True)
    files = generate_ct_series(tmp_path / "ct", slices=3)
    keys = [new_key() for _ in files]
    for key, path in zip(keys, files, strict=True):
        store.put(key, path, sync=False)
    assert archive.get("/instances").json() == []  # not sent yet
    store.sync(keys)
    assert len(archive.get("/instances").json()) == 3
    for key, path in zip(keys, files, strict=True):
        data = path.read_bytes()
        assert store.read_verified(key, _sha(data)) == data


def test_a_file_changed_in_the_archive_is_refused(archive, tmp_path):
    store = _store(archive)
    (path,) = generate_ct_series(tmp_path / "ct", slices=1)
    key = new_key()
    stored = store.put(key, path)
    ds = pydicom.dcmread(path)
    ds.InstitutionName = "ALTERED IN THE ARCHIVE"
    altered = io.BytesIO()
    ds.save_as(altered)
    archive.http.delete(f"{archive.url}/instances/{_orthanc_id(archive, ds.SOPInstanceUID)}")
    archive.upload(altered.getvalue())  # same UIDs, other bytes
    with pytest.raises(StoredFileCorrupt):
        store.read_verified(key, stored.sha256)
    with pytest.raises(StoredFileCorrupt):
        store.verify(key, stored.sha256)


def test_verify_writes_catches_an_archive_keeping_another_version(archive, tmp_path):
    """Orthanc keeps the first copy of a SOP Instance UID: a second, different file under
    the same UIDs is not what a read returns, and verify_writes says so at once."""
    store = _store(archive, verify_writes=True)
    (path,) = generate_ct_series(tmp_path / "ct", slices=1)
    store.put(new_key(), path)
    ds = pydicom.dcmread(path)
    ds.InstitutionName = "SECOND VERSION"
    second = tmp_path / "second.dcm"
    ds.save_as(second)
    with pytest.raises(StoredFileCorrupt):
        store.put(new_key(), second)


def test_missing_keys_and_instances(archive, tmp_path):
    store = _store(archive)
    with pytest.raises(StoredFileMissing):
        store.read_verified(new_key(), "0" * 64)
    assert not store.exists(new_key())
    (path,) = generate_ct_series(tmp_path / "ct", slices=1)
    key = new_key()
    stored = store.put(key, path)
    sop = pydicom.dcmread(path).SOPInstanceUID
    archive.http.delete(f"{archive.url}/instances/{_orthanc_id(archive, sop)}")
    assert not store.exists(key)
    with pytest.raises(StoredFileMissing):
        store.read_verified(key, stored.sha256)
    store.delete(key)  # a missing key is not an error
    store.delete(key)


def test_delete_keeps_an_instance_another_key_still_maps(archive, tmp_path):
    store = _store(archive, delete="orthanc")
    (path,) = generate_ct_series(tmp_path / "ct", slices=1)
    first, second = new_key(), new_key()
    stored = store.put(first, path)
    store.put(second, path)  # the same SOP instance under two keys
    store.delete(first)
    assert not store.exists(first)
    assert store.read_verified(second, stored.sha256) == path.read_bytes()
    store.delete(second)  # the last key: the Orthanc fallback removes the instance
    assert archive.get("/instances").json() == []


def test_refuses_a_file_without_uids(archive, tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not dicom" * 100)
    from qaportal.dicom import DicomRejected

    with pytest.raises(DicomRejected):
        _store(archive).put(new_key(), junk)


@pytest.fixture
def pacs_app(archive, tmp_path, db_url):
    app = make_test_app(tmp_path, db_url, IMAGE_STORE="dicomweb",
                        IMAGE_STORE_URL=archive.url + "/dicom-web",
                        IMAGE_STORE_VERIFY_WRITES=True, IMAGE_STORE_DELETE="orthanc")
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def test_portal_with_the_pacs_store(pacs_app, archive, tmp_path):
    """Upload over HTTP, then the study page, the viewer's frames and WADO-RS, all served
    from the archive; nothing lands in IMAGE_ROOT."""

    owner = make_user(roles=("radiologist",))
    db.session.commit()
    client = pacs_app.test_client()
    assert client.post("/login", data={"email": owner.email,
                                       "password": DEFAULT_PASSWORD}).status_code == 302
    paths = generate_ct_series(tmp_path / "ct", slices=4)
    created = client.post("/studies/upload/batches").get_json()
    handles = [open(p, "rb") for p in paths]  # noqa: SIM115
    try:
        res = client.post(created["files_url"],
                          data={"files": [(h, p.name) for h, p in zip(handles, paths,
                                                                      strict=True)]},
                          content_type="multipart/form-data")
    finally:
        for h in handles:
            h.close()
    assert res.get_json()["stored"] == 4, res.get_json()
    assert client.post(created["finish_url"], data={}).status_code == 200
    rows = list(db.session.scalars(sa.select(Instance)))
    assert len(rows) == 4
    assert {r.storage_key for r in rows} == set(db.session.scalars(sa.select(PacsObject.key)))
    assert len(archive.get("/instances").json()) == 4
    image_root = Path(pacs_app.config["IMAGE_ROOT"])
    assert not image_root.exists() or not any(image_root.rglob("*"))

    study = rows[0].series.study
    assert client.get(f"/studies/{study.id}").status_code == 200
    frames = client.get(f"/studies/{study.id}/series/{rows[0].series_id}/frames.json")
    frame_url = frames.get_json()["frames"][0]["url"]
    png = client.get(frame_url)
    assert png.status_code == 200 and png.mimetype == "image/png"
    assert "X-Frame-Error" not in png.headers

    by_sop = {pydicom.dcmread(p).SOPInstanceUID: p.read_bytes() for p in paths}
    answer = client.get(f"/dicomweb/studies/{study.study_uid}", headers={"Accept": DICOM_ANY})
    assert answer.status_code == 200
    served = [body for _, body in parse_multipart(answer)]
    assert sorted(served) == sorted(served_copy(d) for d in by_sop.values())
    assert client.get(f"/dicomweb/studies/{study.study_uid}/metadata").status_code == 200
    thumb = client.get(f"/studies/{study.id}/series/{rows[0].series_id}/thumbnail.png")
    assert thumb.status_code == 200 and "X-Frame-Error" not in thumb.headers
    download = client.get(f"/studies/{study.id}/deidentified.zip")
    assert download.status_code == 200 and download.data[:2] == b"PK"


def test_verify_storage_on_the_pacs_store(pacs_app, archive, tmp_path):
    owner = make_user(roles=("radiologist",))
    db.session.commit()
    study = ingest(owner, generate_ct_series(tmp_path / "ct", slices=3))
    runner = pacs_app.test_cli_runner()
    ok = runner.invoke(args=["verify-storage", "--archive-orphans"])
    assert ok.exit_code == 0, ok.output
    assert "checked 3 files: 0 missing, 0 altered, 0 orphaned" in ok.output

    first = db.session.scalars(sa.select(Instance).order_by(Instance.id)).first()
    archive.http.delete(f"{archive.url}/instances/{_orthanc_id(archive, first.sop_uid)}")
    stray = generate_ct_series(tmp_path / "stray", slices=1)[0]
    archive.upload(stray.read_bytes())  # in the archive, mapped by no key
    bad = runner.invoke(args=["verify-storage", "--archive-orphans"])
    assert bad.exit_code == 1
    assert f"missing: instance {first.id}" in bad.output
    assert "1 instances in the archive that no key maps to" in bad.output
    assert study.study_uid not in bad.output  # no UIDs printed

    # A key no row names (a crash between STOW and commit) is an orphan, and removable.
    key = new_key()
    image_store().put(key, stray)
    db.session.commit()
    found = runner.invoke(args=["verify-storage"])
    assert "1 orphaned found" in found.output
    removed = runner.invoke(args=["verify-storage", "--delete-orphans"])
    assert "1 orphaned deleted" in removed.output
    assert db.session.get(PacsObject, key) is None


def test_dicomweb_store_without_url_is_a_start_up_error(tmp_path, monkeypatch):
    monkeypatch.setenv("QAPORTAL_IMAGE_STORE", "dicomweb")
    monkeypatch.delenv("QAPORTAL_IMAGE_STORE_URL", raising=False)
    config = {"TESTING": True, "INSTANCE_PATH": str(tmp_path / "i"), "LOCAL": True}
    with pytest.raises(ConfigError, match="QAPORTAL_IMAGE_STORE_URL"):
        create_app(config)
    monkeypatch.setenv("QAPORTAL_IMAGE_STORE", "s3")
    with pytest.raises(ConfigError, match="'filesystem' or 'dicomweb'"):
        create_app(config)


def test_stow_rs_into_the_portal_and_a_duplicate_with_the_pacs_store(pacs_app, archive,
                                                                     tmp_path):
    """STOW-RS parses and stores in a second thread: the files reach the archive, their
    keys are mapped, and the same files sent again are duplicates whose unused keys are
    dropped without removing the instances the first keys still name."""
    from tests.test_dicomweb_stow import stow

    owner = make_user(roles=("radiologist",))
    db.session.commit()
    client = pacs_app.test_client()
    assert client.post("/login", data={"email": owner.email,
                                       "password": DEFAULT_PASSWORD}).status_code == 302
    paths = generate_ct_series(tmp_path / "ct", slices=3)
    first = stow(client, [p.read_bytes() for p in paths])
    assert first.status_code == 200, first.data[:300]
    again = stow(client, [p.read_bytes() for p in paths])
    assert again.status_code == 200, again.data[:300]
    rows = list(db.session.scalars(sa.select(Instance)))
    assert len(rows) == 3
    assert set(db.session.scalars(sa.select(PacsObject.key))) == {r.storage_key for r in rows}
    assert len(archive.get("/instances").json()) == 3
    store = image_store()
    for row in rows:
        store.verify(row.storage_key, row.sha256)


def test_c_store_into_the_portal_with_the_pacs_store(pacs_app, archive, tmp_path):
    """The DICOM listener (C-STORE, its own threads) stores through the PACS store too."""
    from pynetdicom import AE, build_context
    from pynetdicom.sop_class import CTImageStorage

    from qaportal.feeds.listener import ListenConfig, Listener
    from qaportal.models import DicomPeer

    owner = make_user(roles=("radiologist",))
    db.session.add(DicomPeer(ae_title="PYSCU", addresses=["127.0.0.1"], owner_id=owner.id,
                             active=True))
    db.session.commit()
    listener = Listener(pacs_app, ListenConfig("QAPORTAL", 0, "127.0.0.1"))
    listener.start()
    try:
        paths = generate_ct_series(tmp_path / "ct", slices=2)
        ae = AE(ae_title="PYSCU")
        ae.requested_contexts = [build_context(CTImageStorage)]
        assoc = ae.associate("127.0.0.1", listener.port, ae_title="QAPORTAL")
        assert assoc.is_established
        statuses = [assoc.send_c_store(pydicom.dcmread(p)).Status for p in paths]
        assoc.release()
    finally:
        listener.stop()
    assert statuses == [0, 0]
    db.session.expire_all()
    rows = list(db.session.scalars(sa.select(Instance)))
    assert len(rows) == 2 and len(archive.get("/instances").json()) == 2
    for row in rows:
        image_store().verify(row.storage_key, row.sha256)


def test_local_copies_of_the_archive_are_bounded_and_a_pruned_copy_is_fetched_again(
        archive, tmp_path):
    """The renderer and the DICOMweb server read an archive's files through local copies:
    past their bound the oldest-fetched go, and a copy pruned by another process between
    being found and being opened is fetched again, not reported missing."""
    from qaportal.dicom.verified import VerifiedFiles

    store = _store(archive)
    files = generate_ct_series(tmp_path / "ct", slices=6)
    size = max(p.stat().st_size for p in files)
    keys = []
    for path in files:
        key = new_key()
        keys.append((key, store.put(key, path, sync=False).sha256))
    store.sync([k for k, _ in keys])
    copies = tmp_path / "verified" / "copies"
    verified = VerifiedFiles(store, tmp_path / "verified", b"secret", settle_s=0,
                             copies_max_bytes=3 * size)
    for (key, sha), path in zip(keys, files, strict=True):
        assert verified.read_bytes(key, sha) == path.read_bytes()
        held = sum(p.stat().st_size for p in copies.glob("??/*"))
        assert held <= 3 * size
    assert not (copies / keys[0][1][:2] / keys[0][1]).exists()  # the first fetched went
    assert verified.read_bytes(*keys[0]) == files[0].read_bytes()  # and comes back

    found = verified._file_name

    def pruned_meanwhile(key, sha):
        name = found(key, sha)
        verified._file_name = found
        Path(name).unlink()  # another process made room just now
        return name

    verified._file_name = pruned_meanwhile
    assert verified.read_bytes(*keys[1]) == files[1].read_bytes()
    assert verified._file_name is found  # the race did happen
