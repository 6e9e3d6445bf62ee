"""Loader options for pages that list rows: each related row a row shows is loaded with
all the others of its kind in one query (selectin), never one query per row.

Each function returns options relative to its entity, so they nest:
`sa.select(DiscrepancyCase).options(*case_rows())`.
"""

from __future__ import annotations

from sqlalchemy.orm import selectinload
from sqlalchemy.orm.interfaces import LoaderOption

from qaportal.models.discrepancy import DiscrepancyCase
from qaportal.models.opinion import OpinionRequest
from qaportal.models.review import Review, ReviewAssignment
from qaportal.models.study import OriginalRead, Study


def study_rows() -> list[LoaderOption]:
    """A study with its uploader and its read (with the read's reader), as the presenter
    uses them."""
    return [selectinload(Study.owner),
            selectinload(Study.read).selectinload(OriginalRead.reader)]


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


def opinion_request_rows() -> list[LoaderOption]:
    """A second-opinion request with its study and the consultants who declined it."""
    return [selectinload(OpinionRequest.study).options(*study_rows()),
            selectinload(OpinionRequest.declines)]
