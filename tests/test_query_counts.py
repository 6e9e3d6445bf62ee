"""The number of SQL statements a page runs does not grow with the number of rows it shows.

Each page and JSON endpoint that lists rows is requested with a department of N rows of
each kind, then again after 2N more rows of each kind were added (3N): the two requests
must run the same number of statements. A page that loads a related row per shown row
(a lazy load, or every row re-selected after a commit expired it) fails here.

`python -m tests.test_query_counts` prints the counts of every page (SQLite, or the
PostgreSQL of QAPORTAL_TEST_DATABASE_URL).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import pytest
import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import Conference
from qaportal.qa import cases as case_service
from tests.factories import (
    make_assignment,
    make_opinion_request,
    make_review,
    make_study,
    make_user,
)

N = 3
# Pages of the audit log and the other keyset lists long enough to show every entry at both
# sizes (a full page at both would hide a per-row query); the study list and the QA reviews
# list hold more than 3N rows a page.
FULL_PAGES = {"AUDIT_PAGE_SIZE": 10_000, "LIST_PAGE_SIZE": 10_000}

# (name, role of the signed-in user, URL): every listing page and JSON endpoint, and the
# home page of each role.
PAGES = [
    ("qa dashboard", "qa", "/qa/"),
    ("qa statistics", "qa", "/qa/stats"),
    ("discrepancy cases, all", "qa", "/qa/cases"),
    ("discrepancy cases, open", "qa", "/qa/cases?status=open"),
    ("qa reviews list", "qa", "/qa/reviews"),
    ("audit log", "qa", "/audit/"),
    ("committee list", "member", "/reviews/committee"),
    ("review worklist", "reviewer", "/reviews/"),
    ("review worklist json", "reviewer", "/reviews/assignments.json"),
    ("reader feedback list", "reader", "/reviews/feedback"),
    ("study list, radiologist", "reader", "/studies/"),
    ("study list, reviewer", "reviewer", "/studies/"),
    ("consultant worklist", "consultant", "/opinions/"),
    ("opinion request list", "reader", "/opinions/"),
    ("notifications", "reader", "/notifications/"),
    # the keyset lists from a cursor (the boundary row found or not, the same statements)
    ("discrepancy cases, every state", "qa", "/qa/cases?status=all&cursor=n2"),
    ("committee list, cursor", "member", "/reviews/committee?cursor=p2"),
    ("review worklist, cursors", "reviewer", "/reviews/?cursor=n2&done=p9"),
    ("review worklist json, cursors", "reviewer", "/reviews/assignments.json?cursor=p9&done=n2"),
    ("reader feedback list, cursor", "reader", "/reviews/feedback?cursor=p3"),
    ("consultant worklist, cursors", "consultant", "/opinions/?cursor=n1&pool=n1&sent=p2"),
    ("opinion requests, qa", "qa", "/opinions/?all=n1"),
    ("notifications, cursor", "reader", "/notifications/?cursor=p4"),
    ("conference list", "reader", "/reviews/conferences"),
    ("conference list, cursor", "reader", "/reviews/conferences?cursor=n2"),
    ("conference page (agenda grows)", "reader", "/reviews/conferences/1"),
    ("qa conferences", "qa", "/qa/conferences"),
    ("qa conference page (agenda grows)", "qa", "/qa/conferences/1"),
    ("qa teaching cases", "qa", "/qa/teaching"),
    ("home, radiologist", "reader", "/"),
    ("home, consultant", "consultant", "/"),
    ("home, reviewer", "reviewer", "/"),
    ("home, committee member", "member", "/"),
    ("home, qa manager", "qa", "/"),
    ("home, admin", "admin", "/"),
]


def make_people() -> dict:
    """The department's people: one of each role the pages are seen by."""
    people = {
        "reader": make_user(["radiologist"], subspecialties=["body"], licenses=["CA"]),
        "consultant": make_user(["radiologist"], subspecialties=["neuro"], licenses=["CA"]),
        "reviewer": make_user(["reviewer"]),
        "member": make_user(["reviewer", "radiologist"]),
        "qa": make_user(["qa_manager"]),
        "admin": make_user(["admin"]),
    }
    db.session.commit()
    return people


def add_rows(p: dict, count: int) -> None:
    """Add `count` rows of every kind the pages list, with their related rows."""
    for _ in range(count):
        reader = p["reader"]
        # an open review assignment and a submitted one on the reviewer's worklist
        make_assignment(make_study(reader).read, p["reviewer"])
        make_review(make_study(reader).read, p["reviewer"], "1")
        # a case awaiting a committee, one the member scores, one decided for the reader
        case_service.open_case(make_review(make_study(reader).read, p["reviewer"], "3b"),
                               by=p["reviewer"])
        scoring = case_service.open_case(
            make_review(make_study(reader).read, p["reviewer"], "2b"), by=p["reviewer"])
        case_service.assign_committee(scoring, [p["member"]], p["qa"])
        decided = case_service.open_case(
            make_review(make_study(reader).read, p["reviewer"], "3a"), by=p["reviewer"])
        case_service.assign_committee(decided, [p["member"]], p["qa"])
        case_service.cast_vote(decided, p["member"], "3a", "Missed nodule.")
        case_service.record_decision(decided, p["qa"], final_score="3a", outcome="upheld",
                                     rationale="Agreed by the committee.")
        # a second-opinion request from the reader to the consultant's pool
        make_opinion_request(make_study(reader), reader, pool="neuro")
        # a teaching case from the decided case, on a new conference and on the first one
        # (whose agenda grows), the reader invited to both; a review flagged for learning
        add_conference_rows(p, decided.review)
    db.session.commit()


def add_conference_rows(p: dict, review) -> None:
    """A teaching case made of review, on a new conference the reader is invited to and on
    the first conference; one more learning candidate."""
    from qaportal.qa import learning

    tc = learning.create_teaching_case(review.assignment.read.study, p["qa"], title="Nodule",
                                       teaching_point="Look twice.", category=None,
                                       review=review)
    conf = learning.create_conference(p["qa"], title="Monthly", held_on=date(2026, 1, 1))
    learning.add_case(conf, tc, p["qa"])
    learning.invite(conf, [p["reader"], p["member"]], p["qa"])
    first = db.session.get(Conference, 1) or conf
    if first is not conf:
        learning.add_case(first, tc, p["qa"])
    make_review(make_study(p["reader"]).read, p["reviewer"], "1", learning_case=True)


@contextmanager
def counting() -> Iterator[list[str]]:
    """Collect the SQL statements run on the app's engine inside the block."""
    statements: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", before)


def page_queries(client, url: str) -> list[str]:
    """Request the page once (after a warm-up request) and return its statements."""
    client.get(url).close()
    with counting() as statements:
        response = client.get(url)
        response.get_data()
        response.close()
    assert response.status_code == 200, (url, response.status_code)
    return statements


def _sign_in(client, user) -> None:
    from tests.factories import DEFAULT_PASSWORD

    response = client.post("/login", data={"email": user.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 302


@pytest.fixture(scope="module")
def counts(postgres_url, tmp_path_factory) -> Iterator[dict]:
    """Every page's statements at N rows of each kind and at 3N (one department per module:
    building it is the slow part)."""
    from tests.conftest import make_test_app

    tmp = tmp_path_factory.mktemp("query-counts")
    app = make_test_app(tmp, postgres_url or f"sqlite:///{tmp / 'test.sqlite'}",
                        **FULL_PAGES)
    with app.app_context():
        yield measure(app)
        db.session.remove()
        db.engine.dispose()


def measure(app) -> dict[str, tuple[list[str], list[str]]]:
    """Return {page name: (statements at N rows, statements at 3N rows)}."""
    people = make_people()
    add_rows(people, N)
    clients = {}
    for role in sorted({role for _, role, _ in PAGES}):
        clients[role] = app.test_client()
        _sign_in(clients[role], people[role])
    small = {name: page_queries(clients[role], url) for name, role, url in PAGES}
    add_rows(people, 2 * N)
    return {name: (small[name], page_queries(clients[role], url)) for name, role, url in PAGES}


@pytest.mark.parametrize("name", [p[0] for p in PAGES])
def test_queries_do_not_grow_with_rows(counts, name):
    small, large = counts[name]
    assert len(large) == len(small), (
        f"{name}: {len(small)} statements with {N} rows of each kind, {len(large)} with "
        f"{3 * N}; the extra ones:\n" + "\n".join(_extra(small, large)))


# Statements per request of the busiest lists, at most (both databases): each listed row's
# related rows come joined into the page's own query, or one query for all rows, and only
# what the page shows is loaded. A new relationship loaded per row kind raises these.
# (Before the joined loaders of qaportal/models/loading.py: 44, 42, 27, 46, 30, 31, 28, 28,
# 29, 26.)
BUDGETS = {
    "review worklist": 14,
    "review worklist json": 12,
    "review worklist json, cursors": 12,
    "review worklist, cursors": 16,
    "reader feedback list": 10,
    "reader feedback list, cursor": 11,
    "discrepancy cases, all": 9,
    "discrepancy cases, open": 9,
    "discrepancy cases, every state": 10,
    "qa reviews list": 10,
    # The load test's busiest pages: the listed studies' uploaders and readers come without
    # their roles and subspecialties (before: 23, 25, 21, 18, 18).
    "home, radiologist": 20,
    "home, consultant": 21,
    "opinion request list": 17,
    "study list, radiologist": 14,
    "study list, reviewer": 14,
}


@pytest.mark.parametrize("name", sorted(BUDGETS))
def test_busy_lists_stay_within_their_statement_budget(counts, name):
    statements = counts[name][1]
    assert len(statements) <= BUDGETS[name], (
        f"{name}: {len(statements)} statements, budget {BUDGETS[name]}:\n"
        + "\n".join(s[:160] for s in statements))


def _extra(small: list[str], large: list[str]) -> list[str]:
    seen = list(small)
    extra = []
    for s in large:
        if s in seen:
            seen.remove(s)
        else:
            extra.append(s)
    return [s[:300] for s in extra[:10]]


def test_guard_sees_per_row_loads(counts):
    """The counter sees a lazy load per row: the failure the guard is there to catch."""
    from sqlalchemy.orm import Session

    from qaportal.models import ReviewAssignment

    with counting() as statements, Session(db.engine) as session:
        rows = session.scalars(sa.select(ReviewAssignment)).all()
        reads = {a.read.id for a in rows}
    assert len(reads) == len(rows) > 1
    assert len(statements) == 1 + len(rows)


def main() -> None:
    """Print each page's statement count at N and 3N rows."""
    import os
    import tempfile
    from pathlib import Path

    from tests import empty_schema
    from tests.conftest import make_test_app

    tmp = Path(tempfile.mkdtemp(prefix="qaportal-counts-"))
    empty_schema.template_dir = tmp / "template"
    empty_schema.template_dir.mkdir()
    base = os.environ.get("QAPORTAL_TEST_DATABASE_URL")
    if not base:
        _print_counts(make_test_app(tmp, f"sqlite:///{tmp / 'counts.sqlite'}", **FULL_PAGES))
        return
    # a throwaway database on that server, as the test run makes
    admin = sa.make_url(base).set(drivername="postgresql+psycopg")
    name = f"qaportal_counts_{os.getpid()}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = admin.set(database=name).render_as_string(hide_password=False)
        _print_counts(make_test_app(tmp, url, **FULL_PAGES))
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()


def _print_counts(app) -> None:
    with app.app_context():
        counted = measure(app)
        print(f"{'page':32} {N:>4} rows {3 * N:>4} rows")
        for name, (small, large) in counted.items():
            print(f"{name:32} {len(small):>9} {len(large):>9}")
        db.session.remove()
        db.engine.dispose()


if __name__ == "__main__":
    main()
