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
            conn.exec_driver_sql("ANALYZE")
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


@pytest.mark.parametrize("status", ["submitted", "assigned"])
def test_reviewer_worklist_reads_the_reviewer_index(department, status):
    from qaportal.reviews.routes import assignments_stmt

    found = plan(assignments_stmt(READERS + 1, status).limit(50))
    assert "ix_review_assignments_reviewer_status_submitted" in indexes_used(found)
    if status == "submitted":  # read in the index's order: no sort
        assert not sorts(found)


def test_feedback_waiting_reads_the_reader_index(department):
    from qaportal.reviews.panels import feedback_waiting_stmt

    found = plan(feedback_waiting_stmt(1))
    assert indexes_used(found) == {"ix_discrepancy_cases_reader_status"}
    assert found["Plans"][0]["Node Type"] == "Index Only Scan"  # no table row read at all

