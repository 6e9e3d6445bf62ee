"""QA correction of a final original read: the superseded version is kept, reviews flagged.

Audits and flushes only; the view commits.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from qaportal import audit
from qaportal.extensions import db
from qaportal.models import OriginalReadVersion, Review, ReviewAssignment, Study, User, utcnow
from qaportal.studies.service import StudyError


def correct_original_read(study: Study, *, by: User, reader: User, report_text: str,
                          reason: str, keep_final: bool = True) -> OriginalReadVersion:
    """Replace a final read with a corrected one, keeping the old one; return the kept version.

    With keep_final False the read becomes preliminary again (the report did not belong to
    the study): it leaves peer-review sampling and the uploader can enter the right one.
    """
    read = study.read
    if read is None or not read.is_final:
        raise StudyError("Only a final original report is corrected here; the uploader "
                         "can still change a preliminary one.")
    text, reason = (report_text or "").strip(), (reason or "").strip()
    if not reason:
        raise StudyError("Give the reason for the correction.")
    if not text:
        raise StudyError("Enter the corrected report.")
    if not reader.active or not reader.has_role("radiologist"):
        raise StudyError("The reader must be an active radiologist.")
    if text == read.report_text and reader.id == read.reader_id and keep_final:
        raise StudyError("Nothing was changed: the report and the reader are as they are.")
    now = utcnow()
    version = OriginalReadVersion(
        read=read, version=len(read.versions) + 1, reader_id=read.reader_id,
        report_text=read.report_text, finalized_at=read.finalized_at,
        entered_by_id=read.entered_by_id, superseded_at=now, superseded_by_id=by.id,
        reason=reason,
    )
    db.session.add(version)
    previous_reader = read.reader_id
    read.reader_id, read.report_text, read.entered_by_id = reader.id, text, by.id
    if not keep_final:
        read.finalized_at = None
    db.session.flush()
    flagged = db.session.scalars(
        sa.select(Review.id).join(ReviewAssignment, ReviewAssignment.id == Review.assignment_id)
        .where(ReviewAssignment.read_id == read.id).order_by(Review.id)
    ).all()
    audit.record("study.read_corrected", study, actor=by, read_id=read.id,
                 version=version.version, previous_reader_id=previous_reader,
                 reader_id=reader.id, final=read.is_final, flagged_reviews=list(flagged))
    return version


def corrected_review_ids() -> sa.Select:
    """Return a query of the reviews submitted before their read was corrected."""
    return (
        sa.select(Review.id)
        .join(ReviewAssignment, ReviewAssignment.id == Review.assignment_id)
        .join(OriginalReadVersion, OriginalReadVersion.read_id == ReviewAssignment.read_id)
        .where(Review.submitted_at <= OriginalReadVersion.superseded_at)
    )


def reviews_on_corrected_reads(review_ids: Iterable[int]) -> set[int]:
    """Return which of these reviews were submitted before their read was corrected."""
    ids = list(review_ids)
    if not ids:
        return set()
    return set(db.session.scalars(corrected_review_ids().where(Review.id.in_(ids))))
