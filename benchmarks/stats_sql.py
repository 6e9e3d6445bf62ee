"""Time the QA dashboard and statistics figures on PostgreSQL: rows to Python vs SQL counts.

Creates a throwaway database on the PostgreSQL server of --server (loopback; dropped at the
end), seeds it with bulk inserts (core executemany): --readers readers, --reviews reviews
spread over two years (about half in the default 12-month period, as on the department
that showed the problem), cases for most significant scores, a few amendments. Then, each
--repeat times, it times
- "before": what the pages did until the statistics were counted in SQL: every review of
  the period loaded (with every amendment) and counted in Python (re-created here, as
  `rows_to_python`, only for the comparison);
- "after": stats.summary (the dashboard's rate) and stats.breakdown (the statistics page);
- the two pages themselves through the Flask test client, signed in as the QA manager;
and prints the median and the worst. `--explain` prints PostgreSQL's plan of the
statistics page's aggregate.
Run from the repository root: `python benchmarks/stats_sql.py [--reviews 50000]`.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import sys
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402

# The rest of qaportal is imported once the app exists (load_models): importing its
# packages before create_app runs into their import cycle.
db = stats = aggregates = hash_password = None
DiscrepancyCase = OriginalRead = Review = ReviewAmendment = ReviewAssignment = None
Study = User = UserRole = SamplingRule = SamplingRun = None


def load_models() -> None:
    """Import what the benchmark uses into the module's names."""
    from qaportal import extensions, models, passwords
    from qaportal.qa import aggregates as agg
    from qaportal.qa import stats as st

    g = globals()
    g.update(db=extensions.db, stats=st, aggregates=agg, hash_password=passwords.hash_password)
    for name in ("DiscrepancyCase", "OriginalRead", "Review", "ReviewAmendment",
                 "ReviewAssignment", "SamplingRule", "SamplingRun", "Study", "User",
                 "UserRole"):
        g[name] = getattr(models, name)


MODALITIES = ("CT", "MR", "CR", "US", "CT/PT", "MG", "XR", "NM")
SCORES = (("1", 0.92), ("2a", 0.04), ("2b", 0.015), ("3a", 0.01), ("3b", 0.005),
          ("unable", 0.01))
PASSWORD = "bench-password-123456"


def _score(rng: random.Random) -> str:
    x, acc = rng.random(), 0.0
    for score, share in SCORES:
        acc += share
        if x < acc:
            return score
    return "1"


def seed(readers: int, reviews: int) -> None:
    """Fill the app's empty database."""
    rng = random.Random(5)
    ex = db.session.execute
    now = datetime.now(UTC)
    pw = hash_password(PASSWORD)
    users = [{"email": f"reader{i}@bench.test", "full_name": f"Reader {i:03d}"}
             for i in range(readers)]
    users += [{"email": f"reviewer{i}@bench.test", "full_name": f"Reviewer {i}"}
              for i in range(12)]
    users.append({"email": "qa@bench.test", "full_name": "Quinn Quality"})
    ex(sa.insert(User), [{**u, "password_hash": pw, "active": True, "created_at": now,
                          "updated_at": now} for u in users])
    ids = dict(ex(sa.select(User.email, User.id)).all())
    reader_ids = [ids[f"reader{i}@bench.test"] for i in range(readers)]
    reviewer_ids = [ids[f"reviewer{i}@bench.test"] for i in range(12)]
    ex(sa.insert(UserRole), [{"user_id": i, "role": "radiologist"} for i in reader_ids]
       + [{"user_id": i, "role": "reviewer"} for i in reviewer_ids]
       + [{"user_id": ids["qa@bench.test"], "role": "qa_manager"}])
    rule = SamplingRule(name="Bench", method="percent", percent=5.0,
                        created_by_id=ids["qa@bench.test"])
    sampling = SamplingRun(rule=rule, seed=1, params={}, candidates=[], selected=[])
    db.session.add_all([rule, sampling])
    db.session.flush()
    span = 730 * 86400
    for chunk in range(0, reviews, 10_000):
        count = min(10_000, reviews - chunk)
        meta = [(rng.choice(reader_ids), now - timedelta(seconds=rng.randrange(span)))
                for _ in range(count)]
        first = ex(sa.select(sa.func.coalesce(sa.func.max(Study.id), 0))).scalar_one()
        ex(sa.insert(Study), [
            {"study_uid": f"2.25.{uuid.uuid4().int}", "owner_id": rid,
             "modalities": rng.choice(MODALITIES), "jurisdiction": "CA",
             "deid_key": secrets.token_hex(16), "pseudonym": f"B-{chunk + k:08d}",
             "patient_name": f"BENCH^{chunk + k}", "created_at": now, "updated_at": now}
            for k, (rid, _) in enumerate(meta)])
        study_ids = ex(sa.select(Study.id).where(Study.id > first).order_by(Study.id)).scalars()
        first = ex(sa.select(sa.func.coalesce(sa.func.max(OriginalRead.id), 0))).scalar_one()
        ex(sa.insert(OriginalRead), [
            {"study_id": sid, "reader_id": rid, "report_text": "Findings.", "finalized_at": at,
             "entered_by_id": rid, "created_at": now, "updated_at": now}
            for sid, (rid, at) in zip(study_ids, meta, strict=True)])
        read_ids = list(ex(sa.select(OriginalRead.id).where(OriginalRead.id > first)
                           .order_by(OriginalRead.id)).scalars())
        first = ex(sa.select(sa.func.coalesce(sa.func.max(ReviewAssignment.id), 0))).scalar_one()
        sources = rng.choices(("sample", "legacy", "adhoc"), (90, 7, 3), k=len(read_ids))
        ex(sa.insert(ReviewAssignment), [
            {"read_id": rid, "reviewer_id": rng.choice(reviewer_ids), "source": source,
             "run_id": sampling.id if source == "sample" else None,
             "deidentified": True, "status": "submitted", "assigned_at": now,
             "due_at": now, "impression": "", "revealed_at": now, "submitted_at": now}
            for rid, source in zip(read_ids, sources, strict=True)])
        assignment_ids = ex(sa.select(ReviewAssignment.id).where(ReviewAssignment.id > first)
                            .order_by(ReviewAssignment.id)).scalars()
        rows = []
        for aid in assignment_ids:
            score = _score(rng)
            disc = score in ("2a", "2b", "3a", "3b")
            rows.append({"assignment_id": aid, "score": score,
                         "unable_reason": "Motion." if score == "unable" else "",
                         "category": "perceptual" if disc else None,
                         "comment": "Missed." if disc else "", "learning_case": False,
                         "submitted_at": now})
        ex(sa.insert(Review), rows)
    significant = ex(
        sa.select(Review.id, Review.score, OriginalRead.reader_id)
        .join(ReviewAssignment, ReviewAssignment.id == Review.assignment_id)
        .join(OriginalRead, OriginalRead.id == ReviewAssignment.read_id)
        .where(Review.score.in_(("2b", "3a", "3b")))).all()
    cases = []
    for k, (review_id, score, reader_id) in enumerate(significant):
        status = ("closed", "decided", "committee", "open")[k % 4]
        decided = status in ("decided", "closed")
        cases.append({"review_id": review_id, "reader_id": reader_id, "status": status,
                      "round": 1, "opened_at": now, "status_at": now,
                      "final_score": (score if k % 3 else "2a") if decided else None,
                      "outcome": "upheld" if decided else None,
                      "rationale": "Consensus." if decided else "", "reader_response": ""})
    ex(sa.insert(DiscrepancyCase), cases)
    amended = ex(sa.select(Review.id).order_by(Review.id).limit(reviews // 200)).scalars()
    ex(sa.insert(ReviewAmendment), [
        {"review_id": rid, "amended_by_id": ids["qa@bench.test"], "amended_at": now,
         "reason": "Bench.", "score": "2a", "category": "perceptual", "comment": "Missed.",
         "learning_case": False} for rid in amended])
    db.session.commit()
    ex(sa.text("ANALYZE"))
    db.session.commit()


def rows_to_python(period) -> int:
    """The statistics page's work before: every review row of the period to Python."""
    start, end = period.bounds()
    rows = db.session.execute(
        sa.select(Review.id, Review.score, ReviewAssignment.reviewer_id,
                  ReviewAssignment.source, OriginalRead.reader_id, OriginalRead.finalized_at,
                  Study.modalities, DiscrepancyCase.status, DiscrepancyCase.final_score)
        .join(ReviewAssignment, Review.assignment_id == ReviewAssignment.id)
        .join(OriginalRead, ReviewAssignment.read_id == OriginalRead.id)
        .join(Study, OriginalRead.study_id == Study.id)
        .outerjoin(DiscrepancyCase, DiscrepancyCase.review_id == Review.id)
        .where(ReviewAssignment.read_id.in_(sa.select(OriginalRead.id).where(
            OriginalRead.finalized_at >= start, OriginalRead.finalized_at < end)))
        .order_by(Review.id)).all()
    amended = dict(db.session.execute(sa.select(ReviewAmendment.review_id,
                                                ReviewAmendment.score)).all())
    groups: dict[tuple, Counter] = defaultdict(Counter)
    for r in rows:
        score = amended.get(r.id, r.score)
        key = (r.reader_id, (r.modalities or "").split("/")[0] or "?",
               f"{r.finalized_at.year:04d}-{r.finalized_at.month:02d}")
        groups[key][score, r.status] += 1
    return len(rows)


def timed(fn, repeat: int) -> tuple[float, float]:
    """Return the median and worst wall time of fn in ms (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/")
    parser.add_argument("--readers", type=int, default=40)
    parser.add_argument("--reviews", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()
    server = sa.make_url(args.server).set(drivername="postgresql+psycopg")
    if server.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the benchmark creates and drops a database: loopback servers only")
    name = f"qaportal_stats_bench_{os.getpid()}"
    admin = sa.create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        run(args, server.set(database=name).render_as_string(hide_password=False))
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def run(args, url: str) -> None:
    import tempfile

    from qaportal import create_app

    tmp = Path(tempfile.mkdtemp(prefix="qaportal-stats-bench-"))
    app = create_app({"INSTANCE_PATH": str(tmp), "SECRET_KEY": "bench-secret-key",
                      "SQLALCHEMY_DATABASE_URI": url, "LOCAL": True,
                      "WTF_CSRF_ENABLED": False, "ARGON2_TIME_COST": 1,
                      "ARGON2_MEMORY_KIB": 8, "ARGON2_PARALLELISM": 1})
    load_models()
    with app.app_context():
        db.create_all()
        t = time.perf_counter()
        seed(args.readers, args.reviews)
        period = stats.Period.default()
        in_period = rows_to_python(period)
        print(f"seeded {args.reviews} reviews of {args.readers} readers in "
              f"{time.perf_counter() - t:.0f} s; {in_period} in the period {period.label}")
        if args.explain:
            start, end = period.bounds()
            stmt = _breakdown_statement(start, end)
            sql = str(stmt.compile(db.engine, compile_kwargs={"literal_binds": True}))
            plan = db.session.execute(sa.text("EXPLAIN (ANALYZE, BUFFERS) " + sql)).scalars()
            print("\n".join(plan))
        rows = [
            ("before: period's rows to Python", lambda: rows_to_python(period)),
            ("after: dashboard rate (summary)", lambda: stats.summary(db.session, period)),
            ("after: statistics (breakdown)", lambda: stats.breakdown(db.session, period)),
        ]
        for label, fn in rows:
            median, worst = timed(fn, args.repeat)
            print(f"{label:40} median {median:8.1f} ms   worst {worst:8.1f} ms")
        db.session.remove()
    client = app.test_client()
    client.post("/login", data={"email": "qa@bench.test", "password": PASSWORD})
    for url_path in ("/qa/", "/qa/stats"):
        def page(path=url_path):
            response = client.get(path)
            assert response.status_code == 200, response.status_code
        median, worst = timed(page, args.repeat)
        print(f"{'page ' + url_path:40} median {median:8.1f} ms   worst {worst:8.1f} ms")


def _breakdown_statement(start, end):
    """The statistics page's aggregate, as stats.breakdown runs it."""
    captured = []

    def before(conn, cursor, statement, parameters, context, executemany):
        captured.append(context.compiled.statement)

    sa.event.listen(db.engine, "before_cursor_execute", before)
    try:
        aggregates.grouped_counts(db.session, start, end,
                                  by=("reader_id", "modalities", "month"))
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", before)
    return captured[-1]


if __name__ == "__main__":
    main()
