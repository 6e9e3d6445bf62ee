"""The DICOM listener against real senders: dcmtk's echoscu/storescu, pynetdicom, Orthanc.

One listener per module, in this process, on a free loopback port, with its own app and
database; the tests look at what each association stored through the database and the
image store.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
import sqlalchemy as sa
from pydicom.uid import generate_uid
from pynetdicom import AE, build_context
from pynetdicom.sop_class import CTImageStorage, Verification

from qaportal.extensions import db
from qaportal.feeds.listener import ListenConfig, Listener
from qaportal.models import AuditEvent, DicomPeer, Instance, Study, UploadBatch
from qaportal.studies.jobs import import_files, new_batch
from qaportal.studies.storage import image_store
from tests.conftest import make_test_app
from tests.factories import make_user
from tests.studyfiles import sample

DCMTK = shutil.which("storescu") and shutil.which("echoscu") and shutil.which("dcmconv")
needs_dcmtk = pytest.mark.skipif(not DCMTK, reason="Debian package dcmtk is not installed "
                                 "(no storescu/echoscu)")
# pydicom test files in the syntaxes a PACS sends, each with the storescu option that
# proposes its syntax (storescu then sends it as it is): uncompressed (explicit and implicit
# little endian, big endian), deflated, JPEG baseline and extended, JPEG lossless, JPEG-LS,
# JPEG 2000, RLE.
SENT = [("CT_small.dcm", "-xe"), ("MR_small.dcm", "-xe"), ("MR_small_implicit.dcm", "-xi"),
        ("MR_small_bigendian.dcm", "-xb"), ("image_dfl.dcm", "-xd"),
        ("SC_rgb_jpeg_dcmtk.dcm", "-xy"), ("JPEG-lossy.dcm", "-xx"),
        ("JPGLosslessP14SV1_1s_1f_8b.dcm", "-xs"), ("MR_small_jpeg_ls_lossless.dcm", "-xt"),
        ("US1_J2KR.dcm", "-xv"), ("MR_small_RLE.dcm", "-xr")]
SUCCESS, CANNOT_UNDERSTAND, DUPLICATE_SOP_INSTANCE = 0x0000, 0xC000, 0x0111


@dataclass
class World:
    app: object
    listener: Listener
    owner_id: int
    port: int

    def rows(self, model, *where):
        with self.app.app_context():
            return db.session.scalars(sa.select(model).where(*where)).all()

    def ends(self, ae: str) -> list[dict]:
        """The recorded ends of a peer's associations, oldest first."""
        return [d for d in self.audit("feeds.dicom_association_ended") if d["calling_ae"] == ae]

    def next_end(self, ae: str, before: int) -> tuple[dict, UploadBatch | None]:
        """Wait for the end of the peer's next association (recorded as its connection
        closes, just after the sender has seen the release); return it and its batch."""
        deadline = time.monotonic() + 10
        while len(ends := self.ends(ae)) <= before:
            assert time.monotonic() < deadline, "the association's end was not recorded"
            time.sleep(0.02)
        end = ends[before]
        with self.app.app_context():
            batch = db.session.get(UploadBatch, end["batch"]) if end["batch"] else None
            return end, batch

    def audit(self, action: str) -> list[dict]:
        with self.app.app_context():
            return [e.details for e in db.session.scalars(sa.select(AuditEvent).where(
                AuditEvent.action == action).order_by(AuditEvent.seq))]

    def stored_bytes(self, sop_uid: str) -> bytes:
        with self.app.app_context():
            inst = db.session.scalar(sa.select(Instance).where(Instance.sop_uid == sop_uid))
            assert inst is not None, "not stored"
            data = image_store().read_verified(inst.storage_key, inst.sha256)
            return data


@pytest.fixture(scope="module")
def world(tmp_path_factory, postgres_url):
    tmp = tmp_path_factory.mktemp("listen")
    app = make_test_app(tmp, postgres_url or f"sqlite:///{tmp / 'test.sqlite'}")
    with app.app_context():
        owner = make_user(("radiologist",), email="pacs-owner@example.test")
        retired = make_user(("radiologist",), email="retired@example.test", active=False)
        for ae, addresses, who, active in [
            ("STORESCU", ["127.0.0.1"], owner, True), ("PYSCU", ["127.0.0.0/8"], owner, True),
            ("ORTHANC", ["127.0.0.1", "::1"], owner, True),
            ("ELSEWHERE", ["10.20.30.40"], owner, True), ("OFFLINE", ["127.0.0.1"], owner, False),
            ("RETIRED", ["127.0.0.1"], retired, True)]:
            db.session.add(DicomPeer(ae_title=ae, addresses=addresses, owner_id=who.id,
                                     active=active))
        db.session.commit()
        owner_id = owner.id
    listener = Listener(app, ListenConfig("QAPORTAL", 0, "127.0.0.1"))
    listener.start()
    try:
        yield World(app, listener, owner_id, listener.port)
    finally:
        listener.stop()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def data_set_bytes(data: bytes) -> bytes:
    """The data set after a file's meta group (what C-STORE carries); a deflated one
    inflated (two encoders may compress the same bytes differently)."""
    assert data[128:132] == b"DICM"
    length = int.from_bytes(data[140:144], "little")
    data_set = data[144 + length:]
    if b"1.2.840.10008.1.2.1.99" in data[144:144 + length]:
        return zlib.decompress(data_set, -zlib.MAX_WBITS)
    return data_set


def new_instance(name: str, folder: Path) -> Path:
    """A pydicom test file as a new instance (own SOP Instance UID), in its own syntax: several
    samples are one MR slice in different encodings, which the portal would rightly hold as
    conflicting copies of one instance."""
    ds = pydicom.dcmread(sample(name))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    if 0xFFFCFFFC in ds:  # Data Set Trailing Padding: storescu leaves it out when sending
        del ds[0xFFFCFFFC]
    folder.mkdir(parents=True, exist_ok=True)
    ds.save_as(folder / name, enforce_file_format=True)
    return folder / name


def scu(world: World, ae_title: str = "PYSCU", contexts=None):
    ae = AE(ae_title=ae_title)
    ae.requested_contexts = contexts or [build_context(CTImageStorage)]
    return ae.associate("127.0.0.1", world.port, ae_title="QAPORTAL")


def ct_copy(folder: Path, name: str, **changes) -> Path:
    """CT_small as a new instance (own UIDs), with some elements changed or removed (None)."""
    ds = pydicom.dcmread(sample("CT_small.dcm"))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    folder.mkdir(parents=True, exist_ok=True)
    ds.save_as(folder / name, enforce_file_format=True)
    return folder / name


@needs_dcmtk
def test_echoscu_and_storescu_store_every_syntax_byte_for_byte(world, tmp_path):
    echo = subprocess.run(["echoscu", "-aet", "STORESCU", "-aec", "QAPORTAL", "127.0.0.1",
                           str(world.port)], capture_output=True, text=True, timeout=30)
    assert echo.returncode == 0, echo.stderr
    for name, propose in SENT:
        # Written by dcmtk first (explicit lengths), as storescu encodes what it sends.
        path = tmp_path / f"dcmtk-{name}"
        conv = subprocess.run(["dcmconv", str(new_instance(name, tmp_path)), str(path)],
                              capture_output=True, text=True, timeout=60)
        assert conv.returncode == 0, conv.stderr
        before = len(world.ends("STORESCU"))
        sent = subprocess.run(["storescu", "--required", propose, "-aet", "STORESCU", "-aec",
                               "QAPORTAL", "127.0.0.1", str(world.port), str(path)],
                              capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0, sent.stderr + sent.stdout
        end, batch = world.next_end("STORESCU", before)
        assert end["ended"] == "released" and end["stored"] == 1
        assert batch.source == "dicom" and batch.user_id == world.owner_id
        assert batch.finished_at is not None
        assert (batch.stored, batch.errors) == (1, []), name
        source = pydicom.dcmread(path, stop_before_pixels=True)
        stored = world.stored_bytes(source.SOPInstanceUID)
        assert hashlib.sha256(data_set_bytes(stored)).digest() == \
            hashlib.sha256(data_set_bytes(path.read_bytes())).digest(), name
        meta = pydicom.dcmread(io.BytesIO(stored), stop_before_pixels=True).file_meta
        assert meta.TransferSyntaxUID == source.file_meta.TransferSyntaxUID, name
        assert meta.SourceApplicationEntityTitle == "STORESCU"
    assert world.audit("feeds.dicom_association_accepted")


@needs_dcmtk
@pytest.mark.parametrize("ae, why", [("UNKNOWN", "unknown AE"), ("ELSEWHERE", "wrong address"),
                                     ("OFFLINE", "inactive peer"),
                                     ("RETIRED", "owner deactivated")])
def test_unknown_or_inactive_peer_is_rejected_and_audited(world, ae, why):
    before = len(world.audit("feeds.dicom_association_rejected"))
    echo = subprocess.run(["echoscu", "-aet", ae, "-aec", "QAPORTAL", "127.0.0.1",
                           str(world.port)], capture_output=True, text=True, timeout=30)
    assert echo.returncode != 0, why
    assert "Calling AE Title Not Recognized" in echo.stderr + echo.stdout, why
    rejected = world.audit("feeds.dicom_association_rejected")
    assert len(rejected) == before + 1
    assert rejected[-1]["calling_ae"] == ae and rejected[-1]["address"] == "127.0.0.1"
    assert not world.ends(ae)


def test_refused_instance_gets_failure_status_others_stored_duplicate_is_success(world,
                                                                                 tmp_path):
    good = ct_copy(tmp_path, "good.dcm")
    no_study = ct_copy(tmp_path, "no-study.dcm", StudyInstanceUID=None)
    good2 = ct_copy(tmp_path, "good2.dcm")
    before = len(world.ends("PYSCU"))
    assoc = scu(world)
    assert assoc.is_established
    statuses = [assoc.send_c_store(pydicom.dcmread(p)).Status for p in (good, no_study, good2)]
    again = assoc.send_c_store(pydicom.dcmread(good)).Status  # identical copy
    assoc.release()
    assert statuses == [SUCCESS, CANNOT_UNDERSTAND, SUCCESS] and again == SUCCESS
    end, batch = world.next_end("PYSCU", before)
    assert (batch.stored, batch.duplicates, batch.conflicts) == (2, 1, 0)
    assert batch.errors == [{"file": "instance 2", "error": "missing StudyInstanceUID"}]
    assert (end["received"], end["stored"], end["rejected"]) == (4, 2, 1)
    sop = pydicom.dcmread(good).SOPInstanceUID
    assert len(world.rows(Instance, Instance.sop_uid == sop)) == 1


def test_conflicting_copy_is_refused_never_success(world, tmp_path):
    ds = pydicom.dcmread(ct_copy(tmp_path, "a.dcm"))
    before = len(world.ends("PYSCU"))
    assoc = scu(world)
    assert assoc.send_c_store(ds).Status == SUCCESS
    ds.SeriesDescription = "CHANGED"
    status = assoc.send_c_store(ds).Status
    assoc.release()
    assert status == DUPLICATE_SOP_INSTANCE
    assert world.next_end("PYSCU", before)[1].conflicts == 1


def test_association_aborted_midway_keeps_what_was_acknowledged(world, tmp_path):
    study = generate_uid()
    files = [ct_copy(tmp_path, f"{i}.dcm", StudyInstanceUID=study) for i in range(5)]
    before = len(world.ends("PYSCU"))
    assoc = scu(world)
    for path in files[:3]:
        assert assoc.send_c_store(pydicom.dcmread(path)).Status == SUCCESS
    assoc.abort()
    end, batch = world.next_end("PYSCU", before)
    assert end["ended"] == "aborted" and end["stored"] == 3
    assert batch.stored == 3 and batch.finished_at is not None
    [stored] = world.rows(Study, Study.study_uid == study)
    assert stored.owner_id == world.owner_id and stored.instance_count == 3


def test_echo_only_association_makes_no_batch(world):
    batches = len(world.rows(UploadBatch))
    before = len(world.ends("PYSCU"))
    assoc = scu(world, contexts=[build_context(Verification)])
    assert assoc.send_c_echo().Status == SUCCESS
    assoc.release()
    end, batch = world.next_end("PYSCU", before)
    assert batch is None and end["received"] == 0
    assert len(world.rows(UploadBatch)) == batches


def test_ownership_rule_is_the_uploads(world, tmp_path):
    """A study another account already holds becomes the peer owner's own separate study."""
    path = ct_copy(tmp_path, "shared.dcm", StudyInstanceUID=generate_uid())
    with world.app.app_context():
        other = make_user(("radiologist",))
        db.session.commit()
        other_id = other.id
        import_files([path], other.id, new_batch(other, "cli").id)
    assoc = scu(world)
    assert assoc.send_c_store(pydicom.dcmread(path)).Status == SUCCESS
    assoc.release()
    uid = pydicom.dcmread(path).StudyInstanceUID
    studies = world.rows(Study, Study.study_uid == uid)
    assert sorted(s.owner_id for s in studies) == sorted([world.owner_id, other_id])
    assert [s.instance_count for s in studies] == [1, 1]
