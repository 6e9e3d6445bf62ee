"""The reviewer's and the committee member's and the reader's lists, paged by keyset.

Each list is a filtered statement and its order (qaportal.paging.Key, ending with the id),
read through an index of its own (migrations 0017 and 0020): a reviewer's open
assignments by due date, their submitted ones newest first, a member's committee seats
newest first, a reader's decided cases newest decision first. A cursor for another user's
row is looked up through the same statement, finds nothing and starts the list over.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import selectinload

from qaportal.extensions import db
from qaportal.models import CommitteeMember, DiscrepancyCase, ReviewAssignment, loading
from qaportal.paging import Key, Page, keyset_page

A = ReviewAssignment
OPEN_ORDER = (Key(A.due_at, nullable=True), Key(A.id))
# Submitted assignments always carry submitted_at; decided cases decided_at (filtered on):
# plain DESC, the order of their indexes.
DONE_ORDER = (Key(A.submitted_at, desc=True), Key(A.id, desc=True))
SEAT_ORDER = (Key(CommitteeMember.id, desc=True),)
FEEDBACK_ORDER = (Key(DiscrepancyCase.decided_at, desc=True),
                  Key(DiscrepancyCase.id, desc=True))


def page_size() -> int:
    """Rows per page of these lists (LIST_PAGE_SIZE)."""
    return int(current_app.config["LIST_PAGE_SIZE"])


def assignments_stmt(reviewer_id: int, status: str) -> sa.Select:
    """A reviewer's assignments in one state: open ones by due date, the others newest first
    (the order of the index on reviewer, status, due date or submission time, and id)."""
    stmt = sa.select(A).where(A.reviewer_id == reviewer_id, A.status == status)
    order = OPEN_ORDER if status == "assigned" else DONE_ORDER
    return stmt.order_by(*[k.order() for k in order])


def assignments_page(reviewer_id: int, status: str, cursor: str | None) -> Page:
    """One page of a reviewer's assignments in one state."""
    order = OPEN_ORDER if status == "assigned" else DONE_ORDER
    return keyset_page(db.session, assignments_stmt(reviewer_id, status), order, A.id, cursor,
                       page_size(), options=loading.listed_assignment_rows())


def seats_stmt(user_id: int) -> sa.Select:
    """A member's committee seats (one per case), newest first."""
    return (sa.select(CommitteeMember).where(CommitteeMember.user_id == user_id)
            .order_by(*[k.order() for k in SEAT_ORDER]))


def seats_page(user_id: int, cursor: str | None) -> Page:
    """One page of a member's committee seats, with each seat's case and its votes."""
    return keyset_page(db.session, seats_stmt(user_id), SEAT_ORDER, CommitteeMember.id, cursor,
                       page_size(), options=[selectinload(CommitteeMember.case)
                                             .selectinload(DiscrepancyCase.votes)])


def feedback_stmt(reader_id: int) -> sa.Select:
    """The decided cases about a reader's reads, newest decision first."""
    return (sa.select(DiscrepancyCase)
            .where(DiscrepancyCase.reader_id == reader_id,
                   DiscrepancyCase.decided_at.is_not(None))
            .order_by(*[k.order() for k in FEEDBACK_ORDER]))


def feedback_page(reader_id: int, cursor: str | None) -> Page:
    """One page of the feedback on a reader's reads."""
    return keyset_page(db.session, feedback_stmt(reader_id), FEEDBACK_ORDER, DiscrepancyCase.id,
                       cursor, page_size(), options=loading.listed_case_rows())
