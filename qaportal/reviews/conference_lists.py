"""The attendee's conference list, paged by keyset, and the agendas it and the conference
page show, loaded in a fixed number of queries.

A conference's title is scrubbed with every teaching case on its agenda (it may speak of
any of them), so the list needs each listed conference's agenda: its teaching cases, their
studies, and the people each must not name (the reviewed read's reader, the reviewer, the
committee). `load_agendas` reads all of those for the page's conferences at once; the
presenter is given them and asks nothing more.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from qaportal.extensions import db
from qaportal.models import (
    CommitteeMember,
    Conference,
    ConferenceAttendee,
    ConferenceCase,
    DiscrepancyCase,
    Review,
    ReviewAssignment,
    TeachingCase,
    loading,
)
from qaportal.models.study import OriginalRead
from qaportal.paging import Key, Page, keyset_page
from qaportal.reviews.lists import page_size

# Newest conference first; held_on is never NULL.
CONFERENCE_ORDER = (Key(Conference.held_on, desc=True), Key(Conference.id, desc=True))


def agenda_options() -> list:
    """Loader options of a conference's agenda: its teaching cases and their studies."""
    return [selectinload(Conference.cases).selectinload(ConferenceCase.teaching_case)
            .selectinload(TeachingCase.study).options(*loading.study_rows())]


def conferences_stmt(user_id: int) -> sa.Select:
    """The conferences a user is invited to, newest first."""
    return (sa.select(Conference).join(ConferenceAttendee)
            .where(ConferenceAttendee.user_id == user_id)
            .order_by(*[k.order() for k in CONFERENCE_ORDER]))


def conferences_page(user_id: int, cursor: str | None) -> Page:
    """One page of a user's conferences, each with its agenda (see load_agendas)."""
    return keyset_page(db.session, conferences_stmt(user_id), CONFERENCE_ORDER, Conference.id,
                       cursor, page_size(), options=agenda_options())


def load_agendas(conferences: Iterable[Conference]) -> dict[int, Review]:
    """Load the agendas of these conferences and return the reviews their teaching cases came
    from by id (with reader, reviewer and committee), in a fixed number of queries."""
    conferences = list(conferences)
    missing = [c.id for c in conferences if "cases" not in c.__dict__]
    if missing:
        db.session.scalars(sa.select(Conference).where(Conference.id.in_(missing))
                           .options(*agenda_options())).all()
    review_ids = sorted({item.teaching_case.review_id for c in conferences for item in c.cases
                         if item.teaching_case.review_id is not None})
    if not review_ids:
        return {}
    reviews = db.session.scalars(sa.select(Review).where(Review.id.in_(review_ids)).options(
        selectinload(Review.assignment).options(
            selectinload(ReviewAssignment.reviewer),
            selectinload(ReviewAssignment.read).selectinload(OriginalRead.reader)),
        selectinload(Review.case).selectinload(DiscrepancyCase.members)
        .selectinload(CommitteeMember.user),
    )).all()
    return {r.id: r for r in reviews}


def all_conferences_page(cursor: str | None) -> Page:
    """One page of every conference (the QA manager's list), with agenda and attendees
    loaded for the counts it shows."""
    stmt = sa.select(Conference).order_by(*[k.order() for k in CONFERENCE_ORDER])
    return keyset_page(db.session, stmt, CONFERENCE_ORDER, Conference.id, cursor, page_size(),
                       options=[selectinload(Conference.cases),
                                selectinload(Conference.attendees)])
