"""The OPPE packet's and department summary's lists and turnaround tables, read with a few
columns and only the rows they show, equal a computation over every raw row.

The reviews are those of tests/test_stats_sql.py (amendments that change score and category,
cases at every status, legacy and ad hoc reviews, reads on the period's edges) and random
second-opinion requests of every priority and status (signed on time and late, breached,
open and overdue, with and without a recorded turnaround). The counts and rates of both
reports come from qaportal.qa.stats, compared with the raw rows in test_stats_sql.py.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, timedelta

import pytest
import sqlalchemy as sa

from qaportal.models import (
    DiscrepancyCase,
    OpinionRequest,
    Review,
    ReviewAmendment,
    ReviewAssignment,
    utcnow,
)
from qaportal.models.opinion import PRIORITIES
from qaportal.opinions.sla import due_time
from qaportal.qa import stats
from qaportal.reports import qa_data
from qaportal.reports.department import build_department
from qaportal.reports.practitioner import MAX_LISTED, build_packet
from tests.factories import make_review, make_study, make_user
from tests.test_stats_sql import PERIOD, PERIODS, SIGNIFICANT, build_world

STATUSES = ("open", "accepted", "declined", "signed", "signed", "signed", "cancelled")


def add_requests(db, readers, rng: random.Random, count: int = 150) -> None:
    """Random requests around PERIOD and around now (the department's default period)."""
    study = make_study(readers[0])
    now = utcnow()
    period_start, period_end = PERIOD.bounds()
    for i in range(count):
        around = (period_start, period_end) if i % 2 else (now - timedelta(days=40), now)
        span = (around[1] - around[0]).total_seconds()
        requested = around[0] - timedelta(days=3) + timedelta(
            seconds=rng.uniform(0, span + 6 * 86400))
        priority = rng.choice(PRIORITIES)
        status = rng.choice(STATUSES)
        consultant = rng.choice(readers)
        due = due_time(priority, requested)
        signed = breached = minutes = None
        if status == "signed":
            signed = requested + timedelta(minutes=rng.uniform(5, 4000), seconds=rng.uniform(0, 59))
            if rng.random() < 0.7:  # recorded at signing; else computed from the clocks
                minutes = int((signed - requested).total_seconds() // 60)
        if rng.random() < 0.2:
            breached = due + timedelta(minutes=1)
        db.session.add(OpinionRequest(
            study_id=study.id, requester_id=readers[-1].id, clinical_question="Q?",
            priority=priority, pool=None, named_consultant_id=consultant.id,
            consultant_id=consultant.id if status != "open" else None, status=status,
            requested_at=requested, due_at=due, signed_at=signed, breached_at=breached,
            turnaround_minutes=minutes))
    db.session.commit()


def add_amended(db, reader, qa) -> None:
    """Confirmed reviews whose latest amendment changed the category, or cleared it (down to
    a 1 that the committee's decided 3b outweighs)."""
    reviewer = make_user(["reviewer"])
    at = PERIOD.bounds()[0] + timedelta(days=3)
    for i, (score, category, case) in enumerate((("3b", "interpretive", None),
                                                 ("1", None, "closed"))):
        read = make_study(reader, modality="MR", finalized_at=at + timedelta(hours=i)).read
        review = make_review(read, reviewer, "3a", category="technical", source="adhoc")
        db.session.add(ReviewAmendment(review_id=review.id, amended_by_id=qa.id, reason="Fix",
                                       score=score, category=category,
                                       comment="x" if category else ""))
        if case:
            db.session.add(DiscrepancyCase(review=review, status=case, final_score="3b",
                                           outcome="upheld", rationale="Done."))
    db.session.commit()


def add_edge_requests(db, readers) -> None:
    """Requests made and signed at the period's first instant and at its end (outside)."""
    study = make_study(readers[0])
    start, end = PERIOD.bounds()
    for at in (start, end, end - timedelta(microseconds=1), start - timedelta(microseconds=1)):
        db.session.add(OpinionRequest(
            study_id=study.id, requester_id=readers[-1].id, clinical_question="Q?",
            priority="routine", named_consultant_id=readers[0].id,
            consultant_id=readers[0].id, status="signed", requested_at=at,
            due_at=due_time("routine", at), signed_at=at, turnaround_minutes=0))
    db.session.commit()


@pytest.fixture
def world(db):
    w = build_world(db)
    add_amended(db, w["readers"][0], make_user(["qa_manager"]))
    add_requests(db, w["readers"], random.Random(20261206))
    add_edge_requests(db, w["readers"])
    return w


# --- the raw computation: every row loaded, nothing counted by the database ------------------

def raw_reviews(session) -> list[dict]:
    """Every submitted review, loaded whole with its amendments, read, study and case."""
    latest: dict[int, ReviewAmendment] = {}
    for am in session.scalars(sa.select(ReviewAmendment).order_by(ReviewAmendment.id)):
        latest[am.review_id] = am
    rows = []
    for review in session.scalars(sa.select(Review).order_by(Review.id)):
        read = session.get(ReviewAssignment, review.assignment_id).read
        am = latest.get(review.id)
        score, category = (am.score, am.category) if am else (review.score, review.category)
        case = session.scalar(sa.select(DiscrepancyCase)
                              .where(DiscrepancyCase.review_id == review.id))
        source = session.get(ReviewAssignment, review.assignment_id).source
        rows.append({"id": review.id, "reader": read.reader_id, "at": read.finalized_at,
                     "rated": source in ("sample", "legacy"),
                     "modalities": read.study.modalities, "score": score,
                     "category": category, "case": case})
    return rows


def raw_confirmed(rows: list[dict], period: stats.Period,
                  reader_id: int) -> list[qa_data.ConfirmedItem]:
    """The reader's confirmed discrepancies among the raw rows, most recent read first."""
    items = []
    for row in rows:
        day = row["at"].astimezone(UTC).date()
        if row["reader"] != reader_id or not period.start <= day <= period.end:
            continue
        case, score = row["case"], row["score"]
        if case is None:
            confirmed = score in SIGNIFICANT
        else:
            confirmed = case.status in ("decided", "closed") and case.final_score in SIGNIFICANT
        if confirmed:
            items.append(qa_data.ConfirmedItem(
                reference=f"Case {case.id}" if case else f"Review {row['id']} (imported)",
                read_date=row["at"], modality=(row["modalities"] or "").split("/")[0] or "?",
                category=row["category"], reviewer_score=score,
                final_score=(case.final_score if case else None) or score,
                outcome=case.outcome if case else None, status=case.status if case else None,
                rated=row["rated"]))
    return sorted(items, key=lambda i: (i.read_date, i.reference), reverse=True)


def raw_requests(session, keep) -> list[OpinionRequest]:
    """Every request, loaded whole, kept when keep(request) says so."""
    return [r for r in session.scalars(sa.select(OpinionRequest)) if keep(r)]


def in_period(value, period: stats.Period) -> bool:
    start, end = period.bounds()
    return value is not None and start <= value.astimezone(UTC) < end


def turnaround(requests, now) -> tuple:
    rows = qa_data.turnaround_rows(requests, now)
    return rows, qa_data.turnaround_total(rows, requests)


# --- the comparisons --------------------------------------------------------------------------

def test_confirmed_discrepancies_equal_the_raw_rows(db, world):
    rows = raw_reviews(db.session)
    for period in PERIODS:
        for reader in [*world["readers"], world["only_2b"], world["gone"]]:
            assert qa_data.confirmed_items(db.session, period, reader.id) == \
                raw_confirmed(rows, period, reader.id), (period, reader.full_name)


def test_turnaround_tables_equal_the_raw_requests(db, world):
    for period in [*PERIODS, stats.Period.default()]:
        _compare_requests(db, world, period)


def _compare_requests(db, world, period):
    now = utcnow()
    got = qa_data.requested_in(db.session, period)
    want = raw_requests(db.session, lambda r: in_period(r.requested_at, period))
    assert len(got) == len(want)
    assert turnaround(got, now) == turnaround(want, now)
    for reader in world["readers"]:
        got = qa_data.signed_by(db.session, reader.id, period)
        want = raw_requests(db.session, lambda r, rid=reader.id: (
            r.consultant_id == rid and r.status == "signed" and in_period(r.signed_at, period)))
        assert len(got) == len(want)
        assert turnaround(got, now) == turnaround(want, now)


def test_reports_print_the_raw_figures(db, world):
    """The contexts the two templates print, against the raw computation."""
    qa = make_user(["qa_manager"])
    db.session.commit()
    rows = raw_reviews(db.session)
    params = {"date_from": PERIOD.start, "date_to": PERIOD.end, "confidential": True}
    for reader in world["readers"]:
        ctx = build_packet({**params, "radiologist": reader.email}, qa, fppe=False)
        want = raw_confirmed(rows, PERIOD, reader.id)
        assert ctx["confirmed"] == want[:MAX_LISTED]
        assert (ctx["confirmed_total"], ctx["confirmed_more"]) == \
            (len(want), max(0, len(want) - MAX_LISTED))
        assert ctx["confirmed_adhoc"] == sum(not i.rated for i in want)
        assert dict(ctx["categories"]) == Counter(i.category or "unspecified" for i in want)
        assert dict(ctx["outcomes"]) == Counter(i.outcome or "not adjudicated (imported)"
                                                for i in want)
        signed = raw_requests(db.session, lambda r, rid=reader.id: (
            r.consultant_id == rid and r.status == "signed" and in_period(r.signed_at, PERIOD)))
        assert ctx["opinions_signed"] == len(signed)
        assert ctx["turnaround"] == qa_data.turnaround_rows(signed, utcnow())
    ctx = build_department({**params, "show_names": False}, qa)
    requests = raw_requests(db.session, lambda r: in_period(r.requested_at, PERIOD))
    rows = qa_data.turnaround_rows(requests, utcnow())
    assert ctx["turnaround"] == rows
    assert ctx["turnaround_total"] == qa_data.turnaround_total(rows, requests)


def test_the_world_exercises_every_branch(db, world):
    """What the comparisons cover is there (they cannot pass on empty lists)."""
    rows = raw_reviews(db.session)
    items = [i for r in world["readers"] for i in raw_confirmed(rows, PERIOD, r.id)]
    assert {i.status for i in items} >= {None, "decided", "closed"}
    assert any(i.final_score != i.reviewer_score for i in items)  # the committee changed it
    assert {i.rated for i in items} == {True, False}  # sampled and ad hoc reviews
    # the amendments' categories, one of them cleared (the review's own was "technical")
    assert {(i.reviewer_score, i.category) for i in items} >= {("3b", "interpretive"),
                                                               ("1", None)}
    requests = raw_requests(db.session, lambda r: in_period(r.requested_at, PERIOD))
    rows, total = turnaround(requests, utcnow())
    assert all(r.count > 1 and r.breached for r in rows)
    assert total["count"] > 20 and 0 < total["within_target"] < total["count"]
    recent = raw_requests(db.session, lambda r: in_period(r.requested_at,
                                                          stats.Period.default()))
    assert turnaround(recent, utcnow())[1]["open_overdue"] > 0
