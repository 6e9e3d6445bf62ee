"""The summary tables (qaportal/models/review_counts.py) equal the raw-row aggregates.

After a random sequence of the real service operations (submit, ad hoc and "unable to
assess" reviews, amendments, cases opened, decided, acknowledged, disputed, reads corrected
to another reader or another day, a study's modalities changed), each committed, every
figure read from the summary equals qaportal.qa.aggregates.grouped_counts over the raw rows;
a rebuild writes the same rows as the incremental upkeep; on PostgreSQL two sessions
submitting into one bucket are both counted.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade
from sqlalchemy.orm import Session

from qaportal.extensions import db
from qaportal.models import OriginalRead, ReviewDayCount, ReviewMonthCount, utcnow
from qaportal.models.review_counts import COUNT_COLUMNS
from qaportal.qa import aggregates, cases, service, summary
from qaportal.reviews import service as reviews
from qaportal.studies.corrections import correct_original_read
from tests.factories import make_assignment, make_run, make_study, make_user
from tests.test_migration_study_identity import _insert
from tests.test_migrations import empty_db_url, migrating_app  # noqa: F401 - fixtures

PERIODS = [(date(2025, 11, 20), date(2026, 2, 10)), (date(2025, 12, 1), date(2026, 1, 31)),
           (date(2025, 12, 31), date(2026, 1, 1)), (date(2024, 1, 1), date(2027, 1, 1)),
           (date(2026, 1, 15), date(2026, 1, 14) + timedelta(days=1))]
BYS = [(), ("reader_id",), ("reader_id", "modalities", "month")]


def _bounds(first: date, last: date):
    return (datetime(first.year, first.month, first.day, tzinfo=UTC),
            datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1))


def assert_summary_equals_raw(session, readers) -> None:
    for first, last in PERIODS:
        start, end = _bounds(first, last)
        for by in BYS:
            for modality in (None, "CT", "mr"):
                kw = {"by": by, "modality": modality}
                raw = sorted(tuple(r) for r in aggregates.grouped_counts(session, start, end,
                                                                         **kw))
                got = sorted(tuple(r) for r in summary.grouped_counts(session, start, end,
                                                                      **kw))
                assert got == raw, (first, last, by, modality)
        for reader in readers:
            raw = aggregates.grouped_counts(session, start, end, reader_id=reader.id)
            assert [tuple(r) for r in summary.grouped_counts(session, start, end,
                                                             reader_id=reader.id)] == \
                [tuple(r) for r in raw]


def _tables(session) -> dict:
    return {t.__tablename__: sorted(tuple(r) for r in session.execute(sa.select(t.__table__)))
            for t in (ReviewDayCount, ReviewMonthCount)}


def test_count_columns_are_the_aggregate_labels():
    assert COUNT_COLUMNS == aggregates.COUNT_LABELS


def _when(rng) -> datetime:
    base = datetime(2025, 11, 25, tzinfo=UTC)
    return base + timedelta(seconds=rng.uniform(0, 80 * 86400))


def test_random_service_operations_keep_the_summary_equal_to_the_raw_counts(db):
    rng = random.Random(16)
    owner = make_user(["radiologist"])
    qa = make_user(["qa_manager"])
    readers = [make_user(["radiologist"], full_name=f"Reader {i}") for i in range(3)]
    reviewers = [make_user(["reviewer"], full_name=f"Reviewer {i}") for i in range(4)]
    run = make_run(qa)
    db.session.commit()
    submitted, open_cases, decided = [], [], []
    # edge instants: a day's first microsecond and its last
    edges = [datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
             datetime(2026, 1, 1, tzinfo=UTC)]

    def submit(source="sample", score=None):
        when = edges.pop() if edges else _when(rng)
        study = make_study(owner, reader=rng.choice(readers), finalized_at=when,
                           modality=rng.choice(("CT", "MR", "CT/MR", "US", "")))
        reviewer = rng.choice(reviewers)
        a = make_assignment(study.read, reviewer, source=source,
                            run=run if source == "sample" else None)
        a.revealed_at = utcnow()
        score = score or rng.choice(("1", "1", "2a", "2b", "3a", "3b", "unable"))
        review = reviews.submit(a, reviewer, score=score,
                                category="perceptual" if score not in ("1", "unable") else None,
                                comment="Missed.", unable_reason="Motion.")
        submitted.append(review)
        if review.case is not None:
            open_cases.append(review.case)

    def decide():
        case = open_cases.pop(rng.randrange(len(open_cases)))
        member = next(u for u in reviewers if u.id != case.review.assignment.reviewer_id)
        cases.assign_committee(case, [member], qa)
        cases.cast_vote(case, member, rng.choice(("1", "2b", "3a")), "Seen.")
        cases.record_decision(case, qa, final_score=rng.choice(("1", "2a", "2b", "3b")),
                              outcome="upheld", rationale="Agreed.")
        decided.append(case)

    def close_or_dispute():
        case = decided.pop(rng.randrange(len(decided)))
        reader = db.session.get(type(readers[0]), case.reader_id)
        if rng.random() < 0.5:
            cases.acknowledge(case, reader, "Thanks.")
        else:
            cases.dispute(case, reader, "I disagree.")
            open_cases.append(case)

    def amend():
        review = rng.choice(submitted)
        score = rng.choice(("1", "2b", "3a", "unable"))
        service.amend_review(review, qa, reason="Second look.", score=score,
                             category="perceptual" if score in ("2b", "3a") else None,
                             comment="Missed." if score in ("2b", "3a") else "",
                             learning_case=False)

    def correct():
        study = rng.choice(submitted).assignment.read.study
        other = rng.choice([r for r in readers if r.id != study.read.reader_id])
        correct_original_read(study, by=qa, reader=other, report_text="Corrected.",
                              reason="Wrong reader.")

    def move_day():  # a read's finalization corrected (the bulk of a day moves)
        read: OriginalRead = rng.choice(submitted).assignment.read
        read.finalized_at = _when(rng)

    def relist():
        rng.choice(submitted).assignment.read.study.modalities = rng.choice(("CT", "MR/CT", ""))

    for step in range(60):
        ops = [submit, lambda: submit("adhoc"), lambda: submit(score="unable")]
        ops += [amend, correct, move_day, relist] if submitted else []
        ops += [decide] if open_cases else []
        ops += [close_or_dispute] if decided else []
        rng.choice(ops)()
        db.session.commit()
        if step % 10 == 9:
            assert_summary_equals_raw(db.session, readers)
    assert_summary_equals_raw(db.session, readers)
    assert any(c.status == "closed" for c in cases_of(submitted))
    assert any(r.amendments for r in submitted)
    incremental = _tables(db.session)
    assert incremental["review_day_counts"]
    with db.engine.begin() as connection:
        summary.rebuild(connection)
    db.session.expire_all()
    assert _tables(db.session) == incremental


def cases_of(submitted):
    return [r.case for r in submitted if r.case is not None]


def test_the_session_reads_its_own_uncommitted_reviews(db):
    owner, reviewer = make_user(["radiologist"]), make_user(["reviewer"])
    study = make_study(owner, finalized_at=datetime(2026, 1, 5, 9, tzinfo=UTC))
    a = make_assignment(study.read, reviewer, source="adhoc")
    a.revealed_at = utcnow()
    reviews.submit(a, reviewer, score="1", category=None, comment="")
    start, end = _bounds(date(2026, 1, 1), date(2026, 1, 31))
    (row,) = summary.grouped_counts(db.session, start, end)
    assert row.adhoc == 1
    db.session.rollback()
    (row,) = summary.grouped_counts(db.session, start, end)
    assert row.adhoc == 0


@pytest.mark.usefixtures("migrating_app")
def test_the_migration_counts_the_existing_reviews():
    upgrade(revision="0023")
    with db.engine.begin() as conn:
        reader = _insert(conn, "users", email="r@m.test", session_version=1)
        reviewer = _insert(conn, "users", email="v@m.test", session_version=1)
        for n, (score, day) in enumerate((("1", 3), ("2b", 3), ("unable", 4), ("1", 40))):
            study = _insert(conn, "studies", study_uid=f"2.25.{n}", owner_id=reader,
                            pseudonym=f"QA-{n}", modalities="CT")
            read = _insert(conn, "original_reads", study_id=study, reader_id=reader,
                           entered_by_id=reader,
                           finalized_at=datetime(2026, 1, 1, 8, tzinfo=UTC)
                           + timedelta(days=day))
            assignment = _insert(conn, "review_assignments", read_id=read,
                                 reviewer_id=reviewer, source="legacy", status="submitted")
            _insert(conn, "reviews", assignment_id=assignment, score=score,
                    unable_reason="x" if score == "unable" else "",
                    legacy_score="2" if score == "2b" else None)
    upgrade(revision="0024")
    with Session(db.engine) as session:
        for first, last in PERIODS:
            start, end = _bounds(first, last)
            by = ("reader_id", "modalities", "month")
            assert sorted(map(tuple, summary.grouped_counts(session, start, end, by=by))) == \
                sorted(map(tuple, aggregates.grouped_counts(session, start, end, by=by)))
        assert session.scalar(sa.select(sa.func.sum(ReviewMonthCount.s_1))) == 2


def test_two_sessions_submitting_into_one_bucket_are_both_counted(db):
    """PostgreSQL, READ COMMITTED: the second writer waits for the first's lock and counts
    after it, so it sees the first's committed review (counting before the lock would not)."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite has one writer at a time")
    owner, reviewer = make_user(["radiologist"]), make_user(["reviewer"])
    when = datetime(2026, 1, 5, 9, tzinfo=UTC)
    ids = []
    for _ in range(2):
        study = make_study(owner, finalized_at=when)
        ids.append(make_assignment(study.read, reviewer, source="adhoc").id)
    db.session.commit()
    from qaportal.models import Review, ReviewAssignment

    def add_review(session, assignment_id):
        a = session.get(ReviewAssignment, assignment_id)
        a.status, a.submitted_at = "submitted", utcnow()
        session.add(Review(assignment=a, score="1", submitted_at=utcnow()))
        session.flush()

    first, second = Session(db.engine), Session(db.engine)
    try:
        add_review(first, ids[0])
        summary.settle(first)  # holds the bucket's lock until it commits
        done = threading.Event()

        def other():
            add_review(second, ids[1])
            second.commit()  # waits for the lock
            done.set()

        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.5)
        assert not done.is_set()  # blocked on the lock
        first.commit()
        thread.join(10)
        assert done.is_set()
    finally:
        first.close()
        second.close()
    db.session.expire_all()
    day = db.session.scalar(sa.select(ReviewDayCount.adhoc).where(
        ReviewDayCount.day == when.date()))
    month = db.session.scalar(sa.select(ReviewMonthCount.adhoc).where(
        ReviewMonthCount.month == date(2026, 1, 1)))
    assert (day, month) == (2, 2)
