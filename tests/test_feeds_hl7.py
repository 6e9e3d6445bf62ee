"""HL7 v2 reads over a real MLLP socket: the listener in a thread on a free loopback port."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from qaportal.feeds import hl7_listener
from qaportal.models import (
    AuditEvent,
    DicomPeer,
    IncomingRead,
    OriginalRead,
    OriginalReadVersion,
    ReviewAssignment,
    Study,
)
from qaportal.qa import sampling
from qaportal.studies import jobs
from tests.factories import make_rule, make_user
from tests.studyfiles import modified_copy

VT, FS_CR = b"\x0b", b"\x1c\x0d"
STUDY_UID = "1.2.826.0.1.3680043.8.498.11"


@pytest.fixture
def feed(app, db):
    """A known HL7 sender (peer on 127.0.0.1), its owner, a mapped radiologist, a listener."""
    owner = make_user(["radiologist"], email="pacs@example.test")
    reader = make_user(["radiologist"], full_name="John Smith", reader_id="NPI111")
    peer = DicomPeer(ae_title="RIS1", addresses=["127.0.0.1"], owner_id=owner.id)
    db.session.add(peer)
    db.session.commit()
    server = hl7_listener.start_in_thread(app, "127.0.0.1", 0)
    try:
        yield {"owner": owner, "reader": reader, "peer": peer,
               "port": server.server_address[1]}
    finally:
        server.shutdown()
        server.server_close()


def oru(control_id: str, accession: str, *, text: str = "No acute findings.",
        reader: str = "NPI111", status: str = "F", study_uid: str = "",
        when: str = "20261201103000", version: str = "2.5.1") -> str:
    segs = [
        f"MSH|^~\\&|RIS|HOSP|QAPORTAL|QA|20261201110000||ORU^R01^ORU_R01|{control_id}|P|{version}",
        "PID|1||PID123^^^HOSP^MR||DOE^JANE||19700101|F",
        obr({3: f"{accession}^RIS", 4: "71250^CT CHEST^CPT", 7: "20261201100000",
             18: accession, 22: when, 25: status, 32: f"{reader}&SMITH&JOHN"}),
    ]
    for i, line in enumerate(text.split("\n"), 1):
        segs.append(f"OBX|{i}|TX|71250^CT CHEST^CPT||{line}||||||{status}")
    if study_uid:
        segs.append(f"ZDS|{study_uid}^RIS^Application^DICOM")
    return "\r".join(segs) + "\r"


def obr(fields: dict[int, str]) -> str:
    """Return an OBR segment with these fields (1-based) set."""
    values = [""] * max(fields)
    for n, value in fields.items():
        values[n - 1] = value
    values[0] = "1"
    return "|".join(["OBR", *values])


def send(port: int, *messages: str | bytes) -> list[dict[str, str]]:
    """Send messages over one MLLP connection; return each ACK's MSA fields."""
    answers = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for message in messages:
            data = message.encode() if isinstance(message, str) else message
            sock.sendall(VT + data + FS_CR)
            buf = b""
            while not buf.endswith(FS_CR):
                chunk = sock.recv(65536)
                assert chunk, "the listener closed the connection"
                buf += chunk
            assert buf.startswith(VT)
            segments = buf[1:-2].decode().strip("\r").split("\r")
            msh = segments[0].split("|")
            msa = next(s for s in segments if s.startswith("MSA")).split("|")
            answers.append({"code": msa[1], "control": msa[2], "text": msa[3] if len(msa) > 3
                            else "", "version": msh[11], "type": msh[8], "to": msh[4]})
    return answers


def ingest(owner, tmp_path, accession: str, study_uid: str = STUDY_UID):
    path = modified_copy("CT_small.dcm", tmp_path / f"{accession}.dcm",
                         AccessionNumber=accession, StudyInstanceUID=study_uid,
                         SeriesInstanceUID=study_uid + ".1", SOPInstanceUID=study_uid + ".1.1")
    return jobs.import_files([(path.name, path)], owner.id, jobs.new_batch(owner, "cli").id)


def study_of(db, owner, study_uid: str = STUDY_UID) -> Study:
    db.session.expire_all()
    return db.session.scalar(sa.select(Study).where(Study.owner_id == owner.id,
                                                    Study.study_uid == study_uid))


def rows(db) -> list[IncomingRead]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(IncomingRead).order_by(IncomingRead.id)))


def test_oru_for_a_stored_study_becomes_its_final_original_read(db, feed, tmp_path):
    ingest(feed["owner"], tmp_path, "ACC100")
    [answer] = send(feed["port"], oru("MSG1", "ACC100", text="Line one.\nLine two."))
    assert answer == {"code": "AA", "control": "MSG1", "text": "", "version": "2.5.1",
                      "type": "ACK^R01^ACK", "to": "RIS"}
    study = study_of(db, feed["owner"])
    read = study.read
    assert read.report_text == "Line one.\nLine two."
    assert read.reader_id == feed["reader"].id and read.entered_by_id == feed["owner"].id
    assert read.finalized_at == datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
    [row] = rows(db)
    assert (row.status, row.study_id, row.peer_id) == ("matched", study.id, feed["peer"].id)
    actions = set(db.session.scalars(sa.select(AuditEvent.action)))
    assert {"feeds.read_received", "feeds.read_matched", "study.read_recorded"} <= actions


def test_read_before_its_images_waits_and_is_matched_by_the_ingest(db, feed, tmp_path):
    [answer] = send(feed["port"], oru("MSG2", "ACC200"))
    assert answer["code"] == "AA"
    assert [r.status for r in rows(db)] == ["waiting_images"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OriginalRead)) == 0
    ingest(feed["owner"], tmp_path, "ACC200")
    study = study_of(db, feed["owner"])
    assert study.read is not None and study.read.report_text == "No acute findings."
    assert [(r.status, r.study_id) for r in rows(db)] == [("matched", study.id)]


def test_unknown_reader_is_queued_then_matched_when_mapped(db, feed, tmp_path, client,
                                                           login_as):
    ingest(feed["owner"], tmp_path, "ACC300")
    [answer] = send(feed["port"], oru("MSG3", "ACC300", reader="LOCAL42"))
    assert answer["code"] == "AA"  # kept, waiting for an administrator
    assert [r.status for r in rows(db)] == ["waiting_reader"]
    newcomer = make_user(["radiologist"], full_name="Ann Newcomer")
    db.session.commit()
    login_as("admin")
    page = client.get("/admin/readers")
    assert page.status_code == 200 and b"LOCAL42" in page.data and b"SMITH" in page.data
    r = client.post("/admin/readers/map", data={"reader_identifier": "LOCAL42",
                                                "user_id": newcomer.id})
    assert r.status_code == 302
    db.session.expire_all()
    assert newcomer.reader_id == "LOCAL42"
    assert study_of(db, feed["owner"]).read.reader_id == newcomer.id
    assert [r.status for r in rows(db)] == ["matched"]
    assert b"LOCAL42" not in client.get("/admin/readers").data


def test_reader_page_is_for_administrators_only(db, client, login_as):
    login_as("radiologist")
    assert client.get("/admin/readers").status_code == 403
    assert client.post("/admin/readers/map", data={}).status_code == 403


def test_malformed_and_unsupported_messages_are_refused_and_store_nothing(db, feed):
    bad_obr = ("MSH|^~\\&|RIS|HOSP|QAPORTAL|QA|20261201110000||ORU^R01|BAD1|P|2.5.1\r"
               "PID|1\rOBX|1|TX|X||text||||||F\r")
    adt = "MSH|^~\\&|RIS|HOSP|QAPORTAL|QA|20261201110000||ADT^A01|BAD2|P|2.5.1\rPID|1\r"
    no_reader = oru("BAD3", "ACC400", reader="")
    answers = send(feed["port"], b"this is not HL7", bad_obr, adt, no_reader,
                   oru("BAD4", "ACC400", version="9.9"))
    assert [(a["code"], a["control"]) for a in answers] == [
        ("AR", ""), ("AE", "BAD1"), ("AR", "BAD2"), ("AE", "BAD3"), ("AR", "BAD4")]
    assert rows(db) == []


def test_unknown_sender_is_rejected(db, feed):
    feed["peer"].addresses = ["10.9.9.9"]
    db.session.commit()
    [answer] = send(feed["port"], oru("MSG5", "ACC500"))
    assert (answer["code"], answer["control"], answer["text"]) == ("AR", "MSG5",
                                                                    "unknown sender")
    assert rows(db) == []
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "feeds.hl7_refused")) == 1


def test_duplicate_control_id_is_acknowledged_once_stored(db, feed, tmp_path):
    ingest(feed["owner"], tmp_path, "ACC600")
    message = oru("MSG6", "ACC600")
    answers = send(feed["port"], message, message)
    assert [a["code"] for a in answers] == ["AA", "AA"]
    assert len(rows(db)) == 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "study.read_recorded")) == 1


def test_corrected_result_corrects_the_final_read_and_keeps_the_old_one(db, feed, tmp_path):
    ingest(feed["owner"], tmp_path, "ACC700")
    answers = send(feed["port"], oru("MSG7", "ACC700", text="First."),
                   oru("MSG8", "ACC700", text="Changed, final again."),
                   oru("MSG9", "ACC700", text="Corrected.", status="C"),
                   oru("MSG10", "ACC700", text="Draft.", status="P"))
    assert [a["code"] for a in answers] == ["AA", "AE", "AA", "AA"]
    assert "final" in answers[1]["text"]
    read = study_of(db, feed["owner"]).read
    assert read.report_text == "Corrected." and read.is_final
    [old] = db.session.scalars(sa.select(OriginalReadVersion)).all()
    assert old.report_text == "First."
    assert [r.status for r in rows(db)] == ["matched", "refused", "matched", "preliminary"]


def test_order_pre_registers_and_study_uid_matches(db, feed, tmp_path):
    orm = ("MSH|^~\\&|RIS|HOSP|QAPORTAL|QA|20261201090000||ORM^O01|ORD1|P|2.3.1\r"
           "PID|1||PID9||ROE^RICHARD\rORC|NW|P1|F1\r"
           + obr({2: "P1", 3: "F1", 4: "71250^CT CHEST", 13: "Cough for 3 weeks",
                  18: "ACC800"}) + "\r")
    result = oru("MSG11", "OTHER-ACC", study_uid=STUDY_UID)
    answers = send(feed["port"], orm, result)
    assert [(a["code"], a["version"], a["type"]) for a in answers] == [
        ("AA", "2.3.1", "ACK^O01^ACK"), ("AA", "2.5.1", "ACK^R01^ACK")]
    assert [r.status for r in rows(db)] == ["ordered", "waiting_images"]
    ingest(feed["owner"], tmp_path, "ACC800")
    study = study_of(db, feed["owner"])
    assert study.clinical_question == "Cough for 3 weeks"
    assert study.read.report_text == "No acute findings."  # matched by its StudyInstanceUID
    assert [r.status for r in rows(db)] == ["matched", "matched"]


def test_sampling_draws_on_reads_that_arrived_only_by_hl7(db, feed, tmp_path):
    reviewer = make_user(["reviewer"])
    qa = make_user(["qa_manager"])
    db.session.commit()
    messages = []
    for i in range(3):
        uid = f"{STUDY_UID}.{i}"
        ingest(feed["owner"], tmp_path / str(i), f"ACC9{i}", uid)
        messages.append(oru(f"S{i}", f"ACC9{i}", text=f"Report {i}."))
    assert [a["code"] for a in send(feed["port"], *messages)] == ["AA"] * 3
    rule = make_rule(qa, percent=100)
    run = sampling.commit_run(rule, 7, qa)
    db.session.commit()
    assignments = db.session.scalars(sa.select(ReviewAssignment)).all()
    assert len(run.selected) == 3 and len(assignments) == 3
    assert {a.reviewer_id for a in assignments} == {reviewer.id}
    assert {a.read.reader_id for a in assignments} == {feed["reader"].id}


def test_an_oversized_message_is_refused(app, db, feed):
    app.config["HL7_MAX_MESSAGE_BYTES"] = 2000
    server = hl7_listener.start_in_thread(app, "127.0.0.1", 0)
    try:
        big = oru("BIG1", "ACC1", text="x" * 5000)
        [answer] = send(server.server_address[1], big)
    finally:
        server.shutdown()
        server.server_close()
    assert (answer["code"], answer["control"]) == ("AR", "BIG1")
    assert rows(db) == []


def test_the_command_is_registered_with_its_options(app):
    result = app.test_cli_runner().invoke(args=["hl7-listen", "--help"])
    assert result.exit_code == 0
    assert "--port" in result.output and "--bind" in result.output
