"""Reads received from a RIS or reporting system: keep each one, match it to its study.

A read is matched within its owner's studies (study identity is per owner) by
StudyInstanceUID when the message gives one, else by accession number, and recorded with
the study rules (qaportal.studies.service.set_original_read; a corrected read through
qaportal.studies.corrections). Nothing is dropped: a read whose study has not arrived
waits and is matched after the ingest that brings it commits (`match_after_ingest`); a
read by a radiologist no account is mapped to waits until an administrator sets that
account's reader identifier (`match_waiting_reads_for_reader`).

The functions here audit and flush; the caller commits, except `match_after_ingest` and
`retry_waiting`, which run after someone else's commit and commit their own work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from qaportal import audit
from qaportal.extensions import db
from qaportal.models import DicomPeer, IncomingRead, Study, User, utcnow
from qaportal.studies import service
from qaportal.studies.corrections import correct_original_read
from qaportal.studies.service import StudyError

log = logging.getLogger(__name__)
# A finalization time this little ahead of the portal's clock is taken as "now" (clock skew).
CLOCK_SKEW = timedelta(minutes=5)


@dataclass
class ReadMessage:
    """What a message says, before it is kept (fields as sent, trimmed to the columns)."""

    source: str  # hl7 / fhir
    kind: str = "report"  # report / order
    message_id: str | None = None
    sending_application: str = ""
    sending_facility: str = ""
    accession_number: str = ""
    study_uid: str = ""
    patient_id: str = ""
    patient_name: str = ""
    reader_identifier: str = ""
    reader_name: str = ""
    report_text: str = ""
    result_status: str = "F"  # F final, C corrected, P preliminary
    finalized_at: datetime | None = None


class ReadRejected(ValueError):
    """A message that is valid but cannot be taken (nothing stored); says why."""


def check(msg: ReadMessage) -> None:
    """Refuse a message that cannot be matched or recorded whatever arrives later."""
    if not msg.accession_number and not msg.study_uid:
        raise ReadRejected("no accession number or Study Instance UID")
    if msg.kind == "report":
        if not msg.report_text.strip():
            raise ReadRejected("no report text")
        if not msg.reader_identifier:
            raise ReadRejected("no reader identifier")
    if len(msg.study_uid) > 64 or len(msg.accession_number) > 64:
        raise ReadRejected("accession number or Study Instance UID too long")


def find_duplicate(msg: ReadMessage, owner: User) -> IncomingRead | None:
    """Return the read this message was received as already (same sender and id)."""
    if not msg.message_id:
        return None
    return db.session.scalar(sa.select(IncomingRead).where(
        IncomingRead.owner_id == owner.id, IncomingRead.source == msg.source,
        IncomingRead.sending_application == msg.sending_application[:64],
        IncomingRead.sending_facility == msg.sending_facility[:64],
        IncomingRead.message_id == msg.message_id[:64]))


def receive(msg: ReadMessage, owner: User, peer: DicomPeer | None = None) -> IncomingRead:
    """Keep a checked message for owner and match it if its study and reader are known."""
    if msg.kind == "order":
        status = "ordered"
    elif msg.result_status == "P":
        status = "preliminary"
    else:
        status = "waiting_images"
    row = IncomingRead(
        source=msg.source, kind=msg.kind, message_id=(msg.message_id or None) and
        msg.message_id[:64], sending_application=msg.sending_application[:64],
        sending_facility=msg.sending_facility[:64], owner_id=owner.id,
        peer_id=peer.id if peer else None, accession_number=msg.accession_number[:64],
        study_uid=msg.study_uid[:64], patient_id=msg.patient_id[:64],
        patient_name=msg.patient_name[:200], reader_identifier=msg.reader_identifier[:64],
        reader_name=msg.reader_name[:200], report_text=msg.report_text.strip(),
        result_status=msg.result_status, finalized_at=msg.finalized_at, status=status,
        error="",
    )
    db.session.add(row)
    db.session.flush()
    audit.record("feeds.read_received", row, actor=owner, source=row.source, kind=row.kind,
                 peer_id=row.peer_id, result_status=row.result_status)
    if status != "preliminary":
        try_match(row)
    return row


def _study_for(row: IncomingRead) -> Study | None | str:
    """Return the owner's study this read belongs to, None, or a reason it is ambiguous."""
    scope = Study.owner_id == row.owner_id
    if row.study_uid:
        return db.session.scalar(sa.select(Study).where(scope, Study.study_uid == row.study_uid))
    found = db.session.scalars(sa.select(Study).where(
        scope, Study.accession_number == row.accession_number).limit(2)).all()
    if len(found) > 1:
        return "several studies have this accession number: send the Study Instance UID"
    return found[0] if found else None


def _reader_for(identifier: str) -> User | None:
    if not identifier:
        return None
    return db.session.scalar(sa.select(User).where(User.reader_id == identifier))


def _finalized(row: IncomingRead) -> datetime:
    """Return the read's finalization time (received time when not sent), skew clamped."""
    when = row.finalized_at or row.received_at or utcnow()
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = utcnow()
    return now if now < when <= now + CLOCK_SKEW else when


def try_match(row: IncomingRead) -> None:
    """Match one kept read or order to its study and record it; set its status."""
    study = _study_for(row)
    if isinstance(study, str):
        _refuse(row, study)
        return
    if study is None:
        row.status = "ordered" if row.kind == "order" else "waiting_images"
        return
    row.study_id = study.id
    owner = db.session.get(User, row.owner_id)
    if row.kind == "order":
        if row.report_text and not study.clinical_question:
            service.update_context(study, by=owner, jurisdiction=study.jurisdiction,
                                   clinical_question=row.report_text[:2000],
                                   clinical_history=study.clinical_history)
        _matched(row, owner)
        return
    reader = _reader_for(row.reader_identifier)
    if reader is None:
        row.status = "waiting_reader"
        return
    row.reader_user_id = reader.id
    try:
        _record(row, study, owner, reader)
    except StudyError as exc:
        _refuse(row, str(exc))
        return
    _matched(row, owner)
    _supersede_preliminary(row)


def _record(row: IncomingRead, study: Study, owner: User, reader: User) -> None:
    """Record the read with the study's rules (a final read never changes but by correction)."""
    current = study.read
    if (row.result_status == "C" and current is not None and current.is_final
            and (current.report_text != row.report_text or current.reader_id != reader.id)):
        correct_original_read(study, by=owner, reader=reader, report_text=row.report_text,
                              reason=f"Corrected report received by {row.source.upper()} "
                                     f"(incoming read {row.id}).")
        return
    service.set_original_read(study, by=owner, reader=reader, report_text=row.report_text,
                              finalized_at=_finalized(row))


def _matched(row: IncomingRead, owner: User) -> None:
    row.status, row.error, row.matched_at = "matched", "", utcnow()
    db.session.flush()
    audit.record("feeds.read_matched", row, actor=owner, study_id=row.study_id,
                 kind=row.kind, reader_id=row.reader_user_id)


def _refuse(row: IncomingRead, reason: str) -> None:
    row.status, row.error = "refused", reason[:300]
    db.session.flush()
    audit.record("feeds.read_refused", row, actor=db.session.get(User, row.owner_id),
                 study_id=row.study_id, reason=reason[:300])


def _supersede_preliminary(row: IncomingRead) -> None:
    """Mark the preliminary reads of the same study kept before this final one."""
    earlier = db.session.scalars(sa.select(IncomingRead).where(
        IncomingRead.owner_id == row.owner_id, IncomingRead.status == "preliminary",
        IncomingRead.id < row.id,
        IncomingRead.study_uid == row.study_uid if row.study_uid
        else IncomingRead.accession_number == row.accession_number)).all()
    for old in earlier:
        old.status, old.study_id = "superseded", row.study_id


def _locked(stmt: sa.Select) -> list[IncomingRead]:
    """Run a select of waiting reads, locking them (PostgreSQL) in id order."""
    return list(db.session.scalars(stmt.order_by(IncomingRead.id).with_for_update()))


_FOR_IMAGES = ("waiting_images", "ordered")


def _waiting_for_images(owner_id: int) -> bool:
    return bool(db.session.scalar(sa.select(sa.exists().where(
        IncomingRead.owner_id == owner_id, IncomingRead.status.in_(_FOR_IMAGES)))))


def match_waiting_reads_for_studies(owner_id: int, study_ids) -> int:
    """Match the owner's waiting reads and orders to these studies; return how many matched."""
    ids = sorted(set(study_ids))
    if not ids:
        return 0
    waiting = _FOR_IMAGES
    if not _waiting_for_images(owner_id):
        return 0  # the common case: one indexed lookup per ingest
    rows = db.session.execute(sa.select(Study.study_uid, Study.accession_number)
                              .where(Study.id.in_(ids), Study.owner_id == owner_id)).all()
    uids = sorted({r.study_uid for r in rows})
    accessions = sorted({r.accession_number for r in rows if r.accession_number})
    cond = IncomingRead.study_uid.in_(uids)
    if accessions:
        cond = sa.or_(cond, sa.and_(IncomingRead.study_uid == "",
                                    IncomingRead.accession_number.in_(accessions)))
    matched = 0
    for row in _locked(sa.select(IncomingRead).where(
            IncomingRead.owner_id == owner_id, IncomingRead.status.in_(waiting), cond)):
        try_match(row)
        matched += row.status == "matched"
    return matched


def match_after_ingest(owner_id: int, study_ids) -> int:
    """After an ingest committed: match waiting reads to its studies, and commit.

    The images are stored whatever happens here: a failure is logged and the reads stay
    waiting (matched by the next ingest of the study or an administrator's retry).
    """
    try:
        if not _waiting_for_images(owner_id):
            db.session.rollback()  # nothing to write: end the read, without a commit
            return 0
        matched = match_waiting_reads_for_studies(owner_id, study_ids)
        db.session.commit()
        return matched
    except Exception as exc:  # noqa: BLE001 - never fail an ingest that has committed
        db.session.rollback()
        log.warning("matching waiting reads after an ingest failed (%s)", type(exc).__name__)
        return 0


def waiting_count(reader_identifier: str) -> int:
    """Return how many reads wait for an account with this reader identifier."""
    return db.session.scalar(sa.select(sa.func.count()).select_from(IncomingRead).where(
        IncomingRead.status == "waiting_reader",
        IncomingRead.reader_identifier == reader_identifier)) or 0


def match_waiting_reads_for_reader(user: User) -> int:
    """Match the reads waiting for this account's reader identifier; return how many matched.

    Call after setting User.reader_id (the caller commits).
    """
    if not user.reader_id:
        return 0
    rows = _locked(sa.select(IncomingRead).where(
        IncomingRead.status == "waiting_reader",
        IncomingRead.reader_identifier == user.reader_id))
    matched = 0
    for row in rows:
        try_match(row)
        matched += row.status == "matched"
    return matched


def retry_waiting(read_id: int) -> None:
    """After a waiting read committed: try it once more, and commit.

    A read and the ingest of its study committed at the same moment do not see each
    other; whichever of this and `match_after_ingest` runs last matches them.
    """
    try:
        row = db.session.scalar(sa.select(IncomingRead).where(
            IncomingRead.id == read_id,
            IncomingRead.status.in_(("waiting_images", "ordered"))).with_for_update())
        if row is not None:
            try_match(row)
        db.session.commit()
    except Exception as exc:  # noqa: BLE001 - the read is kept; it waits
        db.session.rollback()
        log.warning("retrying a waiting read failed (%s)", type(exc).__name__)


def unmapped_readers() -> list[sa.Row]:
    """Return (reader_identifier, reader_name, waiting) of the readers no account carries."""
    return list(db.session.execute(
        sa.select(IncomingRead.reader_identifier,
                  sa.func.max(IncomingRead.reader_name).label("reader_name"),
                  sa.func.count().label("waiting"))
        .where(IncomingRead.status == "waiting_reader")
        .group_by(IncomingRead.reader_identifier)
        .order_by(IncomingRead.reader_identifier)))
