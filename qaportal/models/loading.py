"""Loader options for pages that list rows: each related row a row shows is loaded with
all the others of its kind in one query (selectin), never one query per row.

Each function returns options relative to its entity, so they nest:
`sa.select(DiscrepancyCase).options(*case_rows())`.
"""

from __future__ import annotations

from sqlalchemy.orm import joinedload, lazyload, selectinload
from sqlalchemy.orm.interfaces import LoaderOption

from qaportal.models.discrepancy import DiscrepancyCase
from qaportal.models.opinion import OpinionRequest
from qaportal.models.review import Review, ReviewAssignment
from qaportal.models.study import OriginalRead, Study
from qaportal.models.user import User


def study_rows() -> list[LoaderOption]:
    """A study with its uploader and its read (with the read's reader), as the presenter
    uses them: the people without their roles and subspecialties (a listed study shows and
    scrubs their names; were those read, they would load on first use)."""
    return [selectinload(Study.owner).options(*without_roles()),
            selectinload(Study.read).selectinload(OriginalRead.reader)
            .options(*without_roles())]


def without_roles() -> list[LoaderOption]:
    """A User loaded without the roles and subspecialties it loads by default."""
    return [lazyload(User.roles), lazyload(User.subspecialties)]


def read_rows() -> list[LoaderOption]:
    """A read with its reader and its study."""
    return [selectinload(OriginalRead.reader),
            selectinload(OriginalRead.study).options(*study_rows())]


def assignment_rows(with_review: bool = True) -> list[LoaderOption]:
    """A review assignment with its read, reviewer and (unless loaded from it) review."""
    options = [selectinload(ReviewAssignment.read).options(*read_rows()),
               selectinload(ReviewAssignment.reviewer)]
    if with_review:
        options.append(selectinload(ReviewAssignment.review).selectinload(Review.amendments))
    return options


def review_rows() -> list[LoaderOption]:
    """A review with its amendments and its assignment."""
    return [selectinload(Review.amendments),
            selectinload(Review.assignment).options(*assignment_rows(with_review=False))]


def case_rows() -> list[LoaderOption]:
    """A discrepancy case with its review, committee and votes."""
    return [selectinload(DiscrepancyCase.review).options(*review_rows()),
            selectinload(DiscrepancyCase.members), selectinload(DiscrepancyCase.votes)]


def _listed_person(relationship) -> LoaderOption:
    """A person named on a listed row, joined, without the roles and subspecialties User
    loads by default (a list shows a name and scrubs it from text, nothing more; were they
    read, they would load on first use)."""
    return joinedload(relationship).options(*without_roles())


def listed_read_rows() -> list[LoaderOption]:
    """A read, its reader, its study and the study's uploader in the row of the page's own
    query (joined: each is at most one row per listed row), the study's read too (the same
    row again: the presenter reaches the reader through it)."""
    return [_listed_person(OriginalRead.reader),
            joinedload(OriginalRead.study, innerjoin=True).options(
                _listed_person(Study.owner), joinedload(Study.read))]


def listed_assignment_rows() -> list[LoaderOption]:
    """A worklist row: the assignment's read (as listed_read_rows) and its review with the
    review's amendments: 2 statements after the page's own, however many rows, where
    assignment_rows takes 16. Not its reviewer: the worklist's user, already in the
    session, which answers a.reviewer without a statement."""
    return [joinedload(ReviewAssignment.read, innerjoin=True).options(*listed_read_rows()),
            selectinload(ReviewAssignment.review).selectinload(Review.amendments)]


def listed_case_rows() -> list[LoaderOption]:
    """A case as the reader's feedback list shows it: its review, the review's assignment
    and read (as listed_read_rows), joined; not its committee nor votes (not shown)."""
    return [joinedload(DiscrepancyCase.review, innerjoin=True)
            .joinedload(Review.assignment, innerjoin=True)
            .joinedload(ReviewAssignment.read, innerjoin=True).options(*listed_read_rows())]


def qa_listed_review_rows() -> list[LoaderOption]:
    """A row of the QA reviews list: the review's amendments (its effective score), its
    assignment's reviewer, read, reader and study, joined (the study's uploader and read are
    not shown there)."""
    return [selectinload(Review.amendments),
            joinedload(Review.assignment, innerjoin=True).options(
                _listed_person(ReviewAssignment.reviewer),
                joinedload(ReviewAssignment.read, innerjoin=True).options(
                    _listed_person(OriginalRead.reader),
                    joinedload(OriginalRead.study, innerjoin=True)))]


def qa_listed_case_rows() -> list[LoaderOption]:
    """A row of the QA discrepancy case list: reader, reviewer and effective review score
    (as qa_listed_review_rows, without the study: not shown); not the committee nor votes."""
    return [joinedload(DiscrepancyCase.review, innerjoin=True).options(
        selectinload(Review.amendments),
        joinedload(Review.assignment, innerjoin=True).options(
            _listed_person(ReviewAssignment.reviewer),
            joinedload(ReviewAssignment.read, innerjoin=True)
            .options(_listed_person(OriginalRead.reader))))]


def opinion_request_rows() -> list[LoaderOption]:
    """A second-opinion request with its study and the consultants who declined it."""
    return [selectinload(OpinionRequest.study).options(*study_rows()),
            selectinload(OpinionRequest.declines)]
