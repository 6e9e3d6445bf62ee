"""The DICOM listener against real senders: dcmtk's echoscu/storescu, pynetdicom, Orthanc.

One listener per module, in this process, on a free loopback port, with its own app and
database; the tests look at what each association stored through the database and the
image store.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import signal
import subprocess
import sys
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

from qaportal.dicom import generate_ct_series
from qaportal.dicomweb import served
from qaportal.extensions import db
from qaportal.feeds.listener import ListenConfig, Listener
from qaportal.jobs import queue, tasks
from qaportal.models import AuditEvent, DicomPeer, Instance, Study, UploadBatch
from qaportal.studies.jobs import import_files, new_batch
from qaportal.studies.storage import image_store
from tests.conftest import make_test_app
from tests.factories import make_user
from tests.orthanc import Orthanc, free_port
from tests.orthanc import unavailable as orthanc_unavailable
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
    instance: Path
    db_url: str

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
    url = postgres_url or f"sqlite:///{tmp / 'test.sqlite'}"
    app = make_test_app(tmp, url)
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
        yield World(app, listener, owner_id, listener.port, tmp / "instance", url)
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
    del ds[0xFFFCFFFC]  # Data Set Trailing Padding: dcmtk-based senders leave it out
    folder.mkdir(parents=True, exist_ok=True)
    ds.save_as(folder / name, enforce_file_format=True)
    return folder / name


@needs_dcmtk
def test_echoscu_and_storescu_store_every_syntax_byte_for_byte(world, tmp_path):
    before = len(world.ends("STORESCU"))
    echo = subprocess.run(["echoscu", "-aet", "STORESCU", "-aec", "QAPORTAL", "127.0.0.1",
                           str(world.port)], capture_output=True, text=True, timeout=30)
    assert echo.returncode == 0, echo.stderr
    end, batch = world.next_end("STORESCU", before)
    assert (end["received"], end["ended"], batch) == (0, "released", None)
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


def test_an_association_queues_the_headers_of_its_studies_once_it_ends(world, tmp_path):
    """The worker, not the first viewer, computes the DICOMweb headers of what an
    association stored: one job per study, queued when the association ends (not one per
    instance), none for an association that stored nothing new."""
    study = generate_uid()
    files = [ct_copy(tmp_path, f"{i}.dcm", StudyInstanceUID=study) for i in range(4)]

    def warm_jobs(study_id):
        with world.app.app_context():
            return [tuple(t.args) for t in queue(world.app).huey.pending()
                    if t.name == "qaportal.warm_metadata" and t.args[0] == study_id]

    before = len(world.ends("PYSCU"))
    assoc = scu(world)
    for path in files:
        assert assoc.send_c_store(pydicom.dcmread(path)).Status == SUCCESS
    assoc.release()
    world.next_end("PYSCU", before)
    [stored] = world.rows(Study, Study.study_uid == study)
    assert warm_jobs(stored.id) == [(stored.id, world.owner_id)]
    with world.app.app_context():
        tasks.warm_metadata(stored.id, world.owner_id)  # as the worker runs it
        assert served.warm_served(stored.id, world.owner_id) == 0  # all four cached
    # The same instances again are duplicates: nothing new to compute, no second job.
    before = len(world.ends("PYSCU"))
    assoc = scu(world)
    assert all(assoc.send_c_store(pydicom.dcmread(p)).Status == SUCCESS for p in files)
    assoc.release()
    assert world.next_end("PYSCU", before)[1].duplicates == 4
    assert warm_jobs(stored.id) == [(stored.id, world.owner_id)]


def _association_statements(world: World, tmp_path: Path, count: int) -> list[str]:
    """The SQL statements the listener ran for one association storing count new slices
    of one new study."""
    study = generate_uid()
    files = [ct_copy(tmp_path / f"n{count}", f"{i}.dcm", StudyInstanceUID=study)
             for i in range(count)]
    with world.app.app_context():
        engine = db.engine
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    ended = len(world.ends("PYSCU"))
    assoc = scu(world)
    # Each response comes after its instance's statements: counting stops at the last one,
    # before this test's own polling for the association's end.
    sa.event.listen(engine, "before_cursor_execute", before)
    try:
        for path in files:
            assert assoc.send_c_store(pydicom.dcmread(path)).Status == SUCCESS
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)
    assoc.release()
    world.next_end("PYSCU", ended)
    return seen


def test_each_stored_instance_costs_a_few_statements_and_never_the_owners_roles(world,
                                                                               tmp_path):
    """Each C-STORE runs in a new session, committed before its response: what the owner
    needs is their id, not the roles and subspecialties a User loads by default (two more
    queries per instance, and two again when the ingest read the owner after its commit)."""
    few, more = (_association_statements(world, tmp_path, n) for n in (3, 9))
    per_instance = (len(more) - len(few)) / 6
    people = re.compile(r"\bFROM (user_roles|user_subspecialties)\b", re.IGNORECASE)
    assert [s for s in more if people.search(s)] == [s for s in few if people.search(s)]
    # 9.8 on SQLite and PostgreSQL when written (14.8 before: the roles, subspecialties and
    # the User itself again after the commit)
    assert per_instance <= 11, f"{per_instance:.1f} statements per instance"


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
    before = len(world.ends("PYSCU"))
    assoc = scu(world)
    assert assoc.send_c_store(pydicom.dcmread(path)).Status == SUCCESS
    assoc.release()
    assert world.next_end("PYSCU", before)[1].stored == 1
    uid = pydicom.dcmread(path).StudyInstanceUID
    studies = world.rows(Study, Study.study_uid == uid)
    assert sorted(s.owner_id for s in studies) == sorted([world.owner_id, other_id])
    assert [s.instance_count for s in studies] == [1, 1]


def _certificate(folder: Path, name: str, issuer=None):
    """A key and certificate for name (self-signed, or signed by issuer=(key, cert)); the
    certificate is also a CA so that it can sign the client's."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer_key, signer = issuer or (key, None)
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject)
            .issuer_name(signer.subject if signer else subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                           x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None),
                           critical=True)
            .sign(signer_key, hashes.SHA256()))
    key_path, cert_path = folder / f"{name}.key", folder / f"{name}.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, key_path, cert_path


def test_dicom_tls_with_client_certificates(world, tmp_path):
    import ssl

    ca_key, ca_cert, server_key, server_cert = _certificate(tmp_path, "listener")
    _, _, client_key, client_cert = _certificate(tmp_path, "pacs", issuer=(ca_key, ca_cert))
    listener = Listener(world.app, ListenConfig("QAPORTAL", 0, "127.0.0.1", str(server_cert),
                                                str(server_key), str(server_cert)))
    listener.start()
    try:
        client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(server_cert))
        client.load_cert_chain(str(client_cert), str(client_key))
        ae = AE(ae_title="PYSCU")
        ae.requested_contexts = [build_context(CTImageStorage)]
        before = len(world.ends("PYSCU"))
        assoc = ae.associate("127.0.0.1", listener.port, ae_title="QAPORTAL",
                             tls_args=(client, "localhost"))
        assert assoc.is_established
        ds = pydicom.dcmread(ct_copy(tmp_path, "tls.dcm"))
        assert assoc.send_c_store(ds).Status == SUCCESS
        assoc.release()
        end, batch = world.next_end("PYSCU", before)
        assert batch.stored == 1 and world.stored_bytes(ds.SOPInstanceUID)
        assert world.audit("feeds.dicom_association_accepted")[-1]["tls"] is True
        # Plain TCP, and TLS without a client certificate, never get an association.
        plain = ae.associate("127.0.0.1", listener.port, ae_title="QAPORTAL")
        assert not plain.is_established
        anonymous = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(server_cert))
        refused = ae.associate("127.0.0.1", listener.port, ae_title="QAPORTAL",
                               tls_args=(anonymous, "localhost"))
        assert not refused.is_established
    finally:
        listener.stop()


@pytest.mark.skipif(bool(orthanc_unavailable()), reason=orthanc_unavailable() or "")
def test_orthanc_sends_a_study_by_c_store(world, tmp_path):
    """Orthanc pushes a study it holds to the listener (`/modalities/{id}/store`): the
    portal then holds the same instances, element for element."""
    study_uid = generate_uid()
    files = generate_ct_series(tmp_path / "ct", slices=4, study_uid=study_uid,
                               patient=("ORTHANC^PUSH", "OP1"))
    files.append(ct_copy(tmp_path, "extra.dcm", StudyInstanceUID=study_uid, PatientID="OP1",
                         PatientName="ORTHANC^PUSH"))
    modality = {"portal": ["QAPORTAL", "127.0.0.1", world.port]}
    before = len(world.ends("ORTHANC"))
    with Orthanc(DicomServerEnabled=True, DicomPort=free_port(), DicomAet="ORTHANC",
                 DicomModalities=modality) as orthanc:
        ids = {orthanc.upload(p.read_bytes())["ParentStudy"] for p in files}
        assert len(ids) == 1
        answer = orthanc.post("/modalities/portal/store",
                              {"Resources": list(ids), "Synchronous": True}).json()
        assert answer.get("FailedInstancesCount", 0) == 0
        theirs = {i["MainDicomTags"]["SOPInstanceUID"]: orthanc.instance_file(i["ID"])
                  for i in orthanc.study_instances(ids.pop())}
    end, batch = world.next_end("ORTHANC", before)
    assert (batch.stored, batch.errors, end["ended"]) == (len(files), [], "released")
    [study] = world.rows(Study, Study.study_uid == study_uid)
    assert study.owner_id == world.owner_id and study.instance_count == len(theirs)
    for sop_uid, data in theirs.items():
        ours = pydicom.dcmread(io.BytesIO(world.stored_bytes(sop_uid)))
        original = pydicom.dcmread(io.BytesIO(data))
        assert ours == original and ours.PixelData == original.PixelData
        assert ours.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID


@needs_dcmtk
def test_the_dicom_listen_command(world, tmp_path):
    """`qaportal dicom-listen` as a process: options over settings, C-ECHO and C-STORE from
    a known peer, a clean stop on SIGTERM."""
    env = {**os.environ, "QAPORTAL_INSTANCE_PATH": str(world.instance),
           "QAPORTAL_DATABASE_URL": world.db_url, "QAPORTAL_SECRET_KEY": "test-secret-key",
           "QAPORTAL_LOCAL": "1", "QAPORTAL_DICOM_LISTEN_AE": "FROMSETTING",
           "QAPORTAL_DICOM_LISTEN_PORT": "1", "QAPORTAL_DICOM_LISTEN_BIND": "127.0.0.1"}
    proc = subprocess.Popen([sys.executable, "-m", "qaportal.cli", "dicom-listen", "--ae",
                             "PORTAL2", "--port", "0", "--bind", "127.0.0.1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        match = re.search(r"on 127\.0\.0\.1 port (\d+) as AE PORTAL2", line)
        assert match, line + proc.stderr.read() if proc.poll() is not None else line
        port = match.group(1)
        before = len(world.ends("STORESCU"))
        echo = subprocess.run(["echoscu", "-aet", "STORESCU", "-aec", "PORTAL2", "127.0.0.1",
                               port], capture_output=True, text=True, timeout=30)
        assert echo.returncode == 0, echo.stderr
        world.next_end("STORESCU", before)
        path = ct_copy(tmp_path, "cli.dcm")
        sent = subprocess.run(["storescu", "-aet", "STORESCU", "-aec", "PORTAL2", "127.0.0.1",
                               port, str(path)], capture_output=True, text=True, timeout=30)
        assert sent.returncode == 0, sent.stderr
        end, batch = world.next_end("STORESCU", before + 1)  # after the echo's
        assert batch.stored == 1 and end["ended"] == "released"
        assert world.stored_bytes(pydicom.dcmread(path).SOPInstanceUID)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "stopped" in out
