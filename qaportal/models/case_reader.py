"""A discrepancy case carries the reader of the reviewed read (DiscrepancyCase.reader_id).

Set when the case is inserted, from its review's read; changed on every case of a read
when that read's reader changes (a correction names another reader): the case's reader is
always the read's reader, as when it was looked up through the joins.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session, attributes, object_session

from qaportal.models.discrepancy import DiscrepancyCase
from qaportal.models.review import Review, ReviewAssignment
from qaportal.models.study import OriginalRead


def _reader_of_review(review_id: int) -> sa.ScalarSelect:
    return (sa.select(OriginalRead.reader_id)
            .join(ReviewAssignment, ReviewAssignment.read_id == OriginalRead.id)
            .join(Review, Review.assignment_id == ReviewAssignment.id)
            .where(Review.id == review_id).scalar_subquery())


@sa.event.listens_for(DiscrepancyCase, "before_insert")
def _set_reader(mapper, connection, case: DiscrepancyCase) -> None:
    if case.reader_id is None:
        review_id = case.review_id if case.review_id is not None else case.review.id
        case.reader_id = connection.scalar(sa.select(_reader_of_review(review_id)))


@sa.event.listens_for(OriginalRead, "after_update")
def _follow_reader(mapper, connection, read: OriginalRead) -> None:
    if not attributes.get_history(read, "reader_id").has_changes():
        return
    reviews = (sa.select(Review.id)
               .join(ReviewAssignment, ReviewAssignment.id == Review.assignment_id)
               .where(ReviewAssignment.read_id == read.id))
    connection.execute(sa.update(DiscrepancyCase.__table__)
                       .where(DiscrepancyCase.__table__.c.review_id.in_(reviews))
                       .values(reader_id=read.reader_id))
    session = object_session(read)
    if session is not None:
        session.info[_CHANGED] = True


_CHANGED = "qaportal_case_readers_changed"


@sa.event.listens_for(Session, "after_flush_postexec")
def _expire_case_readers(session: Session, flush_context) -> None:
    """Cases already loaded read their reader again (the UPDATE above bypassed them)."""
    if session.info.pop(_CHANGED, False):
        for obj in list(session.identity_map.values()):
            if isinstance(obj, DiscrepancyCase):
                session.expire(obj, ["reader_id"])
