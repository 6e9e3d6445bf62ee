"""The reviewers' workload (qaportal.qa.workload) read from reviewer_status_counts equals the
same figures counted from every assignment, whatever happens to the assignments; the
migration counts the existing ones; on PostgreSQL two writers for one reviewer are both
counted."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade
from sqlalchemy.orm import Session

from qaportal.extensions import db
from qaportal.models import ReviewAssignment, ReviewerStatusCount, utcnow
from qaportal.qa import sampling, stats, workload
from qaportal.reviews import service as reviews
from tests.factories import make_assignment, make_run, make_study, make_user
from tests.test_migration_study_identity import _insert
from tests.test_migrations import empty_db_url, migrating_app  # noqa: F401 - fixtures


def _counts(session) -> list[tuple]:
    return sorted(tuple(r) for r in session.execute(sa.select(ReviewerStatusCount.__table__)))


def test_random_assignment_changes_keep_the_workload_equal_to_the_raw_counts(db):
    rng = random.Random(26)
    owner, qa = make_user(["radiologist"]), make_user(["qa_manager"])
    reviewers = [make_user(["reviewer"], full_name=f"Reviewer {i}") for i in range(4)]
    run = make_run(qa)
    db.session.commit()
    open_, done = [], []

    def assign(source="sample"):
        study = make_study(owner, finalized_at=utcnow() - timedelta(days=3))
        reviewer = rng.choice(reviewers)
        if source == "sample" and rng.random() < 0.5:
            a = sampling.assign_sampled(study.read, reviewer, run, qa,
                                        at=utcnow() - timedelta(days=rng.choice((1, 30))))
        else:
            a = make_assignment(study.read, reviewer, source=source,
                                run=run if source == "sample" else None,
                                due_in_days=rng.choice((-3, 7)))
        (done if source == "legacy" else open_).append(a)
        if source == "legacy":
            a.status, a.submitted_at = "submitted", utcnow()

    def submit():
        a = open_.pop(rng.randrange(len(open_)))
        a.revealed_at = utcnow()
        reviewer = db.session.get(type(reviewers[0]), a.reviewer_id)
        reviews.submit(a, reviewer, score="1", category=None, comment="")
        done.append(a)

    def cancel():
        open_.pop(rng.randrange(len(open_))).status = "cancelled"

    def reassign():
        a = rng.choice(open_)
        a.reviewer_id = rng.choice([r.id for r in reviewers if r.id != a.reviewer_id])

    def relabel():  # an imported assignment marked legacy afterwards, or the reverse
        a = rng.choice(done)
        a.source = "adhoc" if a.source == "legacy" else "legacy"

    now = utcnow()
    for step in range(50):
        ops = [assign, lambda: assign("adhoc"), lambda: assign("legacy")]
        ops += [submit, submit, cancel, reassign] if open_ else []
        ops += [relabel] if done else []
        rng.choice(ops)()
        db.session.commit()
        if step % 10 == 9:
            assert workload.reviewer_rows(db.session, now) == \
                workload.raw_reviewer_rows(db.session, now)
    got = workload.reviewer_rows(db.session, now)
    assert got == workload.raw_reviewer_rows(db.session, now)
    assert sum(r[5] for r in got) > 0 and sum(r[3] for r in got) > 0  # overdue, completed
    assert [s.assigned for s in stats.reviewer_stats(db.session, now)] == [r[2] for r in got]
    incremental = _counts(db.session)
    with db.engine.begin() as connection:
        workload.rebuild(connection)
    assert _counts(db.session) == incremental


def test_the_session_sees_its_own_uncommitted_assignments(db):
    owner, reviewer = make_user(["radiologist"]), make_user(["reviewer"])
    make_assignment(make_study(owner).read, reviewer, source="adhoc")
    ((_, _, assigned, completed, open_, overdue),) = workload.reviewer_rows(db.session, utcnow())
    assert (assigned, completed, open_, overdue) == (1, 0, 1, 0)
    db.session.rollback()
    assert workload.reviewer_rows(db.session, utcnow()) == []


@pytest.mark.usefixtures("migrating_app")
def test_the_migration_counts_the_existing_assignments():
    upgrade(revision="0025")
    with db.engine.begin() as conn:
        owner = _insert(conn, "users", email="o@m.test", session_version=1)
        reviewer = _insert(conn, "users", email="v@m.test", session_version=1)
        rows = (("adhoc", "submitted"), ("adhoc", "assigned"), ("adhoc", "assigned"),
                ("legacy", "submitted"), ("adhoc", "cancelled"))
        for n, (source, status) in enumerate(rows):
            study = _insert(conn, "studies", study_uid=f"2.25.{n}", owner_id=owner,
                            pseudonym=f"QA-{n}", modalities="CT")
            read = _insert(conn, "original_reads", study_id=study, reader_id=owner,
                           entered_by_id=owner, finalized_at=datetime(2026, 1, 5, tzinfo=UTC))
            _insert(conn, "review_assignments", read_id=read, reviewer_id=reviewer,
                    source=source, status=status)
    upgrade(revision="0026")
    with Session(db.engine) as session:
        assert _counts(session) == [(reviewer, "assigned", 2), (reviewer, "cancelled", 1),
                                    (reviewer, "submitted", 1)]
        now = utcnow()
        assert workload.reviewer_rows(session, now) == workload.raw_reviewer_rows(session, now)


def test_two_writers_for_one_reviewer_are_both_counted(db):
    """PostgreSQL, READ COMMITTED: the second writer waits for the first's lock on the
    reviewer and counts after it, so it sees the first's committed assignment."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite has one writer at a time")
    owner, reviewer = make_user(["radiologist"]), make_user(["reviewer"])
    reads = [make_study(owner).read.id for _ in range(2)]
    db.session.commit()

    def add(session, read_id):
        session.add(ReviewAssignment(read_id=read_id, reviewer_id=reviewer.id, source="adhoc",
                                     assigned_at=utcnow(), due_at=utcnow() + timedelta(days=7)))
        session.flush()

    first, second = Session(db.engine), Session(db.engine)
    try:
        add(first, reads[0])
        workload.settle(first)  # holds the reviewer's lock until it commits
        done = threading.Event()

        def other():
            add(second, reads[1])
            second.commit()  # waits for the lock
            done.set()

        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.5)
        assert not done.is_set(), "the second writer did not wait for the reviewer's lock"
        first.commit()
        thread.join(30)
        assert done.is_set()
    finally:
        first.close()
        second.close()
    assert _counts(db.session) == [(reviewer.id, "assigned", 2)]
