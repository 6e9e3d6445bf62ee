"""Study workflow: clinical context and the original read. Audits and flushes only."""

from __future__ import annotations

from datetime import UTC, datetime

from qaportal import audit
from qaportal.extensions import db
from qaportal.models import OriginalRead, Study, User, utcnow


class StudyError(ValueError):
    """A change the rules do not allow; the message says why."""


def update_context(study: Study, *, by: User, jurisdiction: str | None,
                   clinical_question: str, clinical_history: str) -> None:
    """Set the study's jurisdiction and clinical notes."""
    changed = []
    jurisdiction = (jurisdiction or "").strip().upper() or None
    for name, value in (("jurisdiction", jurisdiction),
                        ("clinical_question", (clinical_question or "").strip()),
                        ("clinical_history", (clinical_history or "").strip())):
        if getattr(study, name) != value:
            setattr(study, name, value)
            changed.append(name)
    if changed:
        audit.record("study.context_updated", study, actor=by, fields=changed)


def set_original_read(study: Study, *, by: User, reader: User, report_text: str,
                      finalized_at: datetime | None) -> OriginalRead | None:
    """Record or change the original report; a finalized report can no longer change."""
    text = (report_text or "").strip()
    read = study.read
    if read is not None and read.is_final:
        if text != read.report_text or reader.id != read.reader_id:
            raise StudyError("The original report is final and can no longer be changed.")
        return read
    if not text:
        return read
    if not reader.active or not reader.has_role("radiologist"):
        raise StudyError("The reader must be an active radiologist.")
    if finalized_at is not None:
        if finalized_at.tzinfo is None:
            finalized_at = finalized_at.replace(tzinfo=UTC)
        if finalized_at > utcnow():
            raise StudyError("The finalization time cannot be in the future.")
    if read is None:
        read = OriginalRead(study=study, reader_id=reader.id, report_text=text,
                            finalized_at=finalized_at, entered_by_id=by.id)
        db.session.add(read)
        action = "study.read_recorded"
    else:
        read.reader_id, read.report_text, read.finalized_at = reader.id, text, finalized_at
        read.entered_by_id = by.id
        action = "study.read_updated"
    db.session.flush()
    audit.record(action, study, actor=by, read_id=read.id, reader_id=reader.id,
                 final=finalized_at is not None)
    return read
