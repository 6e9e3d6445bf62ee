"""The list pages' indexes are the ones PostgreSQL uses (EXPLAIN on a seeded department).

A department of 60 people, 20,000 studies with their reads, a submitted review of each and
a discrepancy case for one review in ten is inserted with INSERT ... SELECT from
generate_series and ANALYZEd: with enough rows the planner has a real choice, so the test
runs with sequential scans allowed and checks the plan PostgreSQL picks on its own.
SQLite has no comparable planner: there the module is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from qaportal.extensions import db

STUDIES = 20_000
READERS = 50  # users 1..50 read and upload; users 51..60 review
REVIEWERS = 10

SEED = [
    """INSERT INTO users (id, email, full_name, password_hash, active, must_change_password,
        session_version, totp_enabled, failed_logins, created_at, updated_at)
       SELECT g, 'user' || g || '@example.test', 'User ' || g, 'x', true, false, 1, false, 0,
              now(), now() FROM generate_series(1, 60) g""",
    """INSERT INTO studies (id, study_uid, owner_id, patient_name, patient_id, patient_sex,
        accession_number, study_date, study_description, modalities, body_part, institution,
        referring_physician, clinical_history, clinical_question, series_count, instance_count,
        size_bytes, burned_in_suspected, deid_key, deid_date_shift_days, pseudonym, created_at,
        updated_at)
       SELECT g, '2.25.' || g, 1 + g % :readers, 'DOE^' || g, 'PID' || g, 'F', 'ACC' || g,
              current_date - g % 700, 'CT CHEST', 'CT', '', '', '', '', '', 1, 1, 0, false,
              md5(g::text), -17, 'QA-' || g, now() - g * interval '1 minute', now()
       FROM generate_series(1, :studies) g""",
    """INSERT INTO original_reads (id, study_id, reader_id, report_text, finalized_at,
        entered_by_id, created_at, updated_at)
       SELECT id, id, owner_id, 'No acute findings.', created_at, owner_id, created_at,
              created_at FROM studies""",
    """INSERT INTO review_assignments (id, read_id, reviewer_id, source, deidentified, status,
        assigned_at, impression, submitted_at, due_at)
       SELECT id, id, 51 + id % :reviewers, 'adhoc', true,
              CASE WHEN id % 20 = 0 THEN 'assigned' ELSE 'submitted' END,
              finalized_at, '', CASE WHEN id % 20 = 0 THEN NULL ELSE finalized_at END,
              finalized_at + interval '14 days'
       FROM original_reads""",
    """INSERT INTO reviews (id, assignment_id, score, unable_reason, category, comment,
        learning_case, submitted_at)
       SELECT id, id, CASE WHEN id % 10 = 1 THEN '3b' ELSE '1' END, '',
              CASE WHEN id % 10 = 1 THEN 'perceptual' END,
              CASE WHEN id % 10 = 1 THEN 'Missed finding.' ELSE '' END, false, submitted_at
       FROM review_assignments WHERE status = 'submitted'""",
    """INSERT INTO discrepancy_cases (review_id, reader_id, status, round, opened_at,
        status_at, final_score, outcome, rationale, decided_at, reader_response)
       SELECT reviews.id, 1 + reviews.id % :readers, s.status, 1, submitted_at, submitted_at,
              CASE WHEN s.status IN ('decided', 'closed') THEN '3b' END,
              CASE WHEN s.status IN ('decided', 'closed') THEN 'upheld' END,
              CASE WHEN s.status IN ('decided', 'closed') THEN 'Agreed.' ELSE '' END,
              CASE WHEN s.status IN ('decided', 'closed') THEN submitted_at END, ''
       FROM reviews, LATERAL (SELECT (ARRAY['closed', 'closed', 'closed', 'decided', 'open',
                                            'committee'])[1 + reviews.id % 6] AS status) s
       WHERE score = '3b'""",
    # three committee seats on each case, held across the department (each member holds a
    # small share of the seats, as in a department: the member's index is the cheap path),
    # notifications, a second-opinion request per study
    # (one in twenty open in the neuro pool, one in twenty accepted, the rest signed)
    """INSERT INTO committee_members (case_id, user_id, added_at)
       SELECT id, 1 + (3 * id + k) % 60, opened_at
       FROM discrepancy_cases, generate_series(0, 2) k""",
    """INSERT INTO notifications (user_id, kind, message, link, created_at)
       SELECT 1 + g % 60, 'note', 'A note.', '', now() - g * interval '1 minute'
       FROM generate_series(1, 2 * :studies) g""",
    """INSERT INTO opinion_requests (id, study_id, requester_id, request_type,
        clinical_question, clinical_history, preliminary_read, payer_criteria, priority, pool,
        named_consultant_id, consultant_id, deidentified, status, requested_at, due_at,
        cancel_reason)
       SELECT g, g, 1 + g % :readers, 'opinion', 'Q?', '', '', '', 'routine',
              CASE WHEN g % 2 = 0 THEN 'neuro' END,
              CASE WHEN g % 2 = 1 THEN 1 + (g + 7) % :readers END,
              CASE WHEN g % 2 = 1 OR g % 20 <> 0 THEN 1 + (g + 7) % :readers END, false,
              CASE WHEN g % 20 = 0 THEN 'open' WHEN g % 20 = 1 THEN 'accepted'
                   ELSE 'signed' END,
              now() - g * interval '1 minute', now() - g * interval '1 minute' + interval '1 day',
              '' FROM generate_series(1, :studies) g""",
]


@pytest.fixture(scope="module")
def department(postgres_url, tmp_path_factory) -> Iterator[None]:
    if postgres_url is None:
        pytest.skip("needs a PostgreSQL server (QAPORTAL_TEST_DATABASE_URL): the plans "
                    "checked are PostgreSQL's")
    from tests.conftest import make_test_app

    app = make_test_app(tmp_path_factory.mktemp("scale-indexes"), postgres_url)
    with app.app_context():
        params = {"studies": STUDIES, "readers": READERS, "reviewers": REVIEWERS}
        for statement in SEED:
            text = sa.text(statement)
            db.session.execute(text, {k: v for k, v in params.items()
                                      if f":{k}" in statement})
        db.session.commit()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            # VACUUM too, as autovacuum leaves a live database: index-only scans are then
            # costed as such (the open assignments' counts read their partial index alone).
            conn.exec_driver_sql("VACUUM ANALYZE")
        yield
        db.session.remove()
        db.engine.dispose()


def plan(stmt: sa.Select) -> dict:
    """Return PostgreSQL's plan of the statement (EXPLAIN, FORMAT JSON), as executed."""
    compiled = stmt.compile(db.engine, compile_kwargs={"literal_binds": True})
    return db.session.execute(sa.text(f"EXPLAIN (FORMAT JSON) {compiled}")).scalar()[0]["Plan"]


def indexes_used(node: dict) -> set[str]:
    """Return the names of the indexes the plan scans anywhere."""
    found = {node["Index Name"]} if "Index Name" in node else set()
    for child in node.get("Plans", []):
        found |= indexes_used(child)
    return found


def sorts(node: dict) -> bool:
    """Return True when the plan sorts (a Sort or Incremental Sort node) anywhere."""
    return "Sort" in node["Node Type"] or any(sorts(c) for c in node.get("Plans", []))


def _qa_manager():
    from qaportal.models import User, UserRole

    db.session.add(UserRole(user_id=READERS + REVIEWERS, role="qa_manager"))
    db.session.flush()
    return db.session.get(User, READERS + REVIEWERS)


def test_study_list_page_reads_the_upload_order_index(department):
    from qaportal.studies.listing import StudyFilter, filtered_studies

    stmt = filtered_studies(_qa_manager(), StudyFilter()).limit(50).offset(100)
    found = plan(stmt)
    db.session.rollback()
    assert "ix_studies_created_at_id" in indexes_used(found) and not sorts(found)


@pytest.mark.parametrize(("status", "index"), [
    ("submitted", "ix_review_assignments_reviewer_status_submitted"),
    ("assigned", "ix_review_assignments_reviewer_status_due")])
def test_reviewer_worklist_reads_the_reviewer_index(department, status, index):
    from qaportal.reviews.lists import assignments_stmt

    found = plan(assignments_stmt(READERS + 1, status).limit(50))
    assert index in indexes_used(found) and not sorts(found)  # read in the index's order


def test_home_panel_reads_the_uploaders_newest_studies_off_their_index(department):
    """The radiologist's "Your studies": newest first from (owner, created_at, id), not a
    sort of every study of theirs (21 ms at 3,334 studies before 0027)."""
    from qaportal.studies.panels import newest_studies_stmt

    found = plan(newest_studies_stmt(1, images=True).limit(5))
    assert "ix_studies_owner_created_at_id" in indexes_used(found), summary(found)
    assert not sorts(found), summary(found)
    # Report-only studies (none in this seed: the planner expects a row) by the owner too.
    found = plan(newest_studies_stmt(1, images=False).limit(5))
    assert indexes_used(found) & {"ix_studies_owner_created_at_id", "ix_studies_owner_id"}
    assert not _seq_scans(found) and _sorted_rows(found) <= 1_000, summary(found)


def test_opened_notifications_are_found_by_link(department):
    """Every page a user opens looks for their unread notifications linking to it: through
    the partial index by (user, link), not by reading each unread one of the user."""
    from qaportal.hooks import opened_notifications_stmt

    found = plan(opened_notifications_stmt(1, ["/reviews/", "/reviews/?cursor=x"]))
    assert indexes_used(found) == {"ix_notifications_unread_link"}, summary(found)


def test_open_and_overdue_assignments_are_counted_from_the_open_index(department):
    """The QA dashboard's and home panel's counts read the partial index of the open
    assignments alone (99 ms by the status index at stage B, 7 ms from this one)."""
    from qaportal.models import ReviewAssignment, utcnow
    from qaportal.models.reviewer_workload import open_assignments

    for extra in ([], [ReviewAssignment.due_at < utcnow()]):
        found = plan(sa.select(sa.func.count()).where(open_assignments(), *extra))
        assert indexes_used(found) == {"ix_review_assignments_open_due"}, summary(found)


def _keyset_page_stmts(stmt, keys, id_col, boundary_id: int):
    """The first page's statement and the next page's (after boundary_id), as keyset_page
    runs them."""
    from qaportal.paging import _after, _leading_bound

    values = db.session.execute(stmt.order_by(None).with_only_columns(*[k.expr for k in keys])
                                .where(id_col == boundary_id)).first()
    assert values is not None, "the boundary row is in the list"
    first = stmt.order_by(None).order_by(*[k.order() for k in keys]).limit(51)
    nxt = (stmt.order_by(None).where(_leading_bound(keys, tuple(values), False),
                                     _after(keys, tuple(values), reverse=False))
           .order_by(*[k.order() for k in keys]).limit(51))
    back = (stmt.order_by(None).where(_leading_bound(keys, tuple(values), True),
                                      _after(keys, tuple(values), reverse=True))
            .order_by(*[k.order(reverse=True) for k in keys]).limit(51))
    return first, nxt, back


def _lists():
    """(name, statement, keys, id column, index) of every keyset list but the study list."""
    from qaportal.models import (
        CommitteeMember,
        DiscrepancyCase,
        Notification,
        OpinionRequest,
        ReviewAssignment,
    )
    from qaportal.notifications.routes import ORDER, notifications_stmt
    from qaportal.opinions.queries import DUE_ORDER, SENT_ORDER
    from qaportal.qa.routes_cases import CASE_ORDER, cases_stmt
    from qaportal.reviews import lists

    reviewer, reader, op = READERS + 1, 1, OpinionRequest
    req = sa.select(op)
    return [
        ("worklist, open", lists.assignments_stmt(reviewer, "assigned"), lists.OPEN_ORDER,
         ReviewAssignment.id, "ix_review_assignments_reviewer_status_due"),
        ("worklist, submitted", lists.assignments_stmt(reviewer, "submitted"),
         lists.DONE_ORDER, ReviewAssignment.id, "ix_review_assignments_reviewer_status_submitted"),
        ("qa cases, not closed", cases_stmt(""), CASE_ORDER, DiscrepancyCase.id,
         "ix_discrepancy_cases_active_opened"),
        # a state of the open work may be read from the partial index too, in order
        ("qa cases, one state", cases_stmt("decided"), CASE_ORDER, DiscrepancyCase.id,
         ("ix_discrepancy_cases_status_opened", "ix_discrepancy_cases_active_opened")),
        ("qa cases, all", cases_stmt("all"), CASE_ORDER, DiscrepancyCase.id,
         "ix_discrepancy_cases_opened"),
        ("reader feedback", lists.feedback_stmt(2), lists.FEEDBACK_ORDER,
         DiscrepancyCase.id, "ix_discrepancy_cases_reader_decided"),
        ("committee seats", lists.seats_stmt(reviewer), lists.SEAT_ORDER, CommitteeMember.id,
         "ix_committee_members_user_seat"),
        ("notifications", notifications_stmt(reader), ORDER, Notification.id,
         "ix_notifications_user_created"),
        ("opinions, mine", req.where(op.consultant_id == 9, op.status.in_(("open", "accepted"))),
         DUE_ORDER, op.id, "ix_opinion_requests_consultant_active"),
        ("opinions, mine, one state", req.where(op.consultant_id == 9, op.status == "signed"),
         DUE_ORDER, op.id, "ix_opinion_requests_consultant_status_due"),
        ("opinions, sent", req.where(op.requester_id == reader), SENT_ORDER, op.id,
         "ix_opinion_requests_requester_due"),
        ("opinions, all", req.where(op.status.in_(("open", "accepted", "declined"))), DUE_ORDER,
         op.id, "ix_opinion_requests_due"),
        ("opinions, pool", req.where(op.status == "open", op.consultant_id.is_(None),
                                     op.pool.in_(["neuro"]), op.requester_id != reader),
         DUE_ORDER, op.id, "ix_opinion_requests_pool_unclaimed"),
    ]


LIST_NAMES = ["worklist, open", "worklist, submitted", "qa cases, not closed",
              "qa cases, one state", "qa cases, all", "reader feedback", "committee seats",
              "notifications", "opinions, mine", "opinions, mine, one state", "opinions, sent",
              "opinions, all", "opinions, pool"]


def _sorted_rows(node: dict) -> int:
    """The most rows any Sort node of the plan expects to sort (0: no sort)."""
    here = node.get("Plan Rows", 0) if "Sort" in node["Node Type"] else 0
    return max([here, *(_sorted_rows(c) for c in node.get("Plans", []))])


def _seq_scans(node: dict) -> bool:
    return node["Node Type"] == "Seq Scan" or any(_seq_scans(c) for c in node.get("Plans", []))


def summary(node: dict, depth: int = 0) -> str:
    """The plan as indented node types, index names and conditions (for failures, the docs)."""
    parts = [node["Node Type"], node.get("Index Name", ""), node.get("Index Cond", "")]
    line = "  " * depth + " ".join(p for p in parts if p) + f" rows={node.get('Plan Rows')}"
    return "\n".join([line, *(summary(c, depth + 1) for c in node.get("Plans", []))])


@pytest.mark.parametrize("name", LIST_NAMES)
def test_keyset_pages_read_their_index(department, name):
    """The first page, the page after a boundary row in the middle of the list and the page
    before it read the list's own index, no sequential scan: in the index's order (no Sort
    node) or, when the planner finds it cheaper, sorting the few rows the index range gives
    (at most a thousand estimated: a short list, or the rows from the boundary to the list's
    end), never a long list."""
    [(_, stmt, keys, id_col, index)] = [x for x in _lists() if x[0] == name]
    names = {index} if isinstance(index, str) else set(index)
    ids = db.session.scalars(stmt.with_only_columns(id_col).limit(2_000)).all()
    assert len(ids) >= 10, f"{name}: the seed gives the list rows"
    steps = _keyset_page_stmts(stmt, keys, id_col, ids[len(ids) // 2])
    for step, found in zip(("first", "next", "previous"), map(plan, steps), strict=True):
        shown = f"{name}, {step} page:\n{summary(found)}"
        print(shown)  # pytest -s shows the plans (cited in docs/architecture.md)
        assert not _seq_scans(found), shown
        assert names & indexes_used(found), shown
        assert not sorts(found) or 0 < _sorted_rows(found) <= 1_000, shown

