"""Seed a migrated, empty PostgreSQL database with a department at scale (benchmarks/scale.py).

Every constraint stays on (the schema is `qaportal db upgrade`'s). The small tables and the
audit log are written with COPY (psycopg 3 `cursor.copy()`): the users with a real Argon2id
hash (one hash, reused), the audit entries as a valid hash chain with their MACs (computed
here as qaportal.audit does, so `qaportal audit-verify` passes). The bulk tables (studies,
reads, assignments, reviews, cases, committee seats, opinion requests, notifications) are
derived inside the server with INSERT ... SELECT over generate_series: the same rows COPY
would carry, without sending them through Python. Then the sequences are moved past the
explicit ids and the database is ANALYZEd.

54 users: 1-30 radiologists (readers, requesters, consultants), 31-50 reviewers (committee
members too), 51-52 QA managers, 53-54 administrators.
"""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime, timedelta

import psycopg

PASSWORD = "scale-bench-password-1234"  # noqa: S105 - the seeded accounts' throwaway password
READERS, REVIEWERS = 30, 20
FIRST_REVIEWER = READERS + 1
QA_IDS, ADMIN_IDS = (51, 52), (53, 54)
USERS = 54
SPAN_DAYS = 730

STAGES = {  # studies (= reads), reviews, discrepancy cases, opinion requests, audit entries
    "tiny": {"studies": 2_000, "reviews": 5_000, "cases": 200, "opinions": 400,
             "audit": 20_000},
    "A": {"studies": 100_000, "reviews": 296_000, "cases": 8_000, "opinions": 20_000,
          "audit": 1_000_000},
    "B": {"studies": 100_000, "reviews": 976_000, "cases": 26_000, "opinions": 20_000,
          "audit": 2_000_000},
}


def email(user_id: int) -> str:
    """The seeded account's e-mail address."""
    if user_id <= READERS:
        return f"reader{user_id}@scale.test"
    if user_id < QA_IDS[0]:
        return f"reviewer{user_id}@scale.test"
    return f"qa{user_id}@scale.test" if user_id in QA_IDS else f"admin{user_id}@scale.test"


def role(user_id: int) -> str:
    if user_id <= READERS:
        return "radiologist"
    if user_id < QA_IDS[0]:
        return "reviewer"
    return "qa_manager" if user_id in QA_IDS else "admin"


# :studies, :assignments, :every (one review in :every is a significant discrepancy with a
# case), :opinions; reads span SPAN_DAYS ending now; one assignment in twenty is open.
BULK = [
    """INSERT INTO studies (id, study_uid, owner_id, patient_name, patient_id, patient_sex,
        patient_birth_date, accession_number, study_date, study_description, modalities,
        body_part, institution, referring_physician, jurisdiction, clinical_history,
        clinical_question, series_count, instance_count, size_bytes, burned_in_suspected,
        deid_key, deid_date_shift_days, pseudonym, created_at, updated_at)
       SELECT g, '2.25.' || (100000000000 + g), 1 + g % 30, 'SCALE^PATIENT' || g, 'PID' || g,
              (ARRAY['F', 'M'])[1 + g % 2], date '1940-01-01' + (g * 7) % 25000, 'ACC' || g,
              (now() - g * (interval '1 day' * 730 / :studies))::date,
              (ARRAY['CT CHEST W CONTRAST', 'MR BRAIN WO', 'XR CHEST 2V', 'US ABDOMEN',
                     'CT ABD PELVIS', 'MG SCREENING'])[1 + g % 6],
              (ARRAY['CT', 'MR', 'CR', 'US', 'CT', 'MG'])[1 + g % 6],
              (ARRAY['CHEST', 'HEAD', 'CHEST', 'ABDOMEN', 'ABDOMEN', 'BREAST'])[1 + g % 6],
              'General Hospital', 'REF^DOCTOR', 'CA', 'History.', 'Question?', 3, 120 + g % 300,
              (120 + g % 300) * 524288, false, md5(g::text), -17 - g % 30, 'QA-' || g,
              now() - g * (interval '1 day' * 730 / :studies),
              now() - g * (interval '1 day' * 730 / :studies)
       FROM generate_series(1, :studies) g""",
    """INSERT INTO original_reads (id, study_id, reader_id, report_text, finalized_at,
        entered_by_id, created_at, updated_at)
       SELECT id, id, owner_id, 'FINDINGS: No acute abnormality. IMPRESSION: Normal study.',
              created_at, owner_id, created_at, created_at FROM studies""",
    """INSERT INTO review_assignments (id, read_id, reviewer_id, source, deidentified, status,
        assigned_at, impression, submitted_at, due_at)
       SELECT g, r.id, 31 + (r.id + (g - 1) / :studies) % 20, 'adhoc', true,
              CASE WHEN g % 20 = 0 THEN 'assigned' ELSE 'submitted' END,
              r.finalized_at + interval '1 hour', '',
              CASE WHEN g % 20 = 0 THEN NULL
                   ELSE r.finalized_at + interval '2 hours' END,
              r.finalized_at + interval '14 days'
       FROM generate_series(1, :assignments) g
       JOIN original_reads r ON r.id = 1 + (g - 1) % :studies""",
    """INSERT INTO reviews (id, assignment_id, score, unable_reason, category, comment,
        learning_case, submitted_at)
       SELECT id, id, CASE WHEN id % :every = 1 THEN '3b' WHEN id % 7 = 2 THEN '2a'
                           ELSE '1' END, '',
              CASE WHEN id % :every = 1 OR id % 7 = 2 THEN 'perceptual' END,
              CASE WHEN id % :every = 1 OR id % 7 = 2 THEN 'Missed finding.' ELSE '' END,
              false, submitted_at
       FROM review_assignments WHERE status = 'submitted'""",
    """INSERT INTO discrepancy_cases (review_id, reader_id, status, round, opened_at,
        status_at, final_score, outcome, rationale, decided_at, reader_response)
       SELECT v.id, r.reader_id, s.status, 1, v.submitted_at, v.submitted_at,
              CASE WHEN s.status IN ('decided', 'closed') THEN '3b' END,
              CASE WHEN s.status IN ('decided', 'closed') THEN 'upheld' END,
              CASE WHEN s.status IN ('decided', 'closed') THEN 'Agreed.' ELSE '' END,
              CASE WHEN s.status IN ('decided', 'closed') THEN v.submitted_at END, ''
       FROM reviews v JOIN review_assignments a ON a.id = v.assignment_id
       JOIN original_reads r ON r.id = a.read_id,
       LATERAL (SELECT (ARRAY['closed', 'closed', 'closed', 'decided', 'open',
                              'committee'])[1 + v.id % 6] AS status) s
       WHERE v.score = '3b'""",
    """INSERT INTO committee_members (case_id, user_id, added_at)
       SELECT id, 31 + (3 * id + k) % 20, opened_at
       FROM discrepancy_cases, generate_series(0, 2) k""",
    """INSERT INTO notifications (user_id, kind, message, link, created_at)
       SELECT 1 + g % 54, 'note', 'A note.', '', now() - g * interval '10 minutes'
       FROM generate_series(1, :studies) g""",
    """INSERT INTO opinion_requests (id, study_id, requester_id, request_type,
        clinical_question, clinical_history, preliminary_read, payer_criteria, priority, pool,
        named_consultant_id, consultant_id, deidentified, status, requested_at, due_at,
        cancel_reason)
       SELECT g, g, 1 + g % 30, 'opinion', 'Q?', '', '', '', 'routine',
              CASE WHEN g % 2 = 0 THEN 'neuro' END,
              CASE WHEN g % 2 = 1 THEN 1 + (g + 7) % 30 END,
              CASE WHEN g % 2 = 1 OR g % 20 <> 0 THEN 1 + (g + 7) % 30 END, false,
              CASE WHEN g % 20 = 0 THEN 'open' WHEN g % 20 = 1 THEN 'accepted'
                   ELSE 'signed' END,
              now() - g * interval '30 minutes',
              now() - g * interval '30 minutes' + interval '2 days', ''
       FROM generate_series(1, :opinions) g""",
]
SEQUENCES = ("users", "studies", "original_reads", "review_assignments", "reviews",
             "opinion_requests")
AUDIT_ACTIONS = ("auth.login", "study.viewed", "review.submitted", "opinion.signed",
                 "qa.identities_viewed", "report.exported")


def _copy_text(cur, table: str, cols: str, rows) -> None:
    buf = io.StringIO()
    for row in rows:
        buf.write("\t".join("\\N" if v is None else str(v) for v in row) + "\n")
    with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
        copy.write(buf.getvalue())


def _users(cur) -> None:
    from argon2 import PasswordHasher

    # qaportal.passwords' defaults (Argon2id, t=3, m=64 MiB, p=2): sign-in costs what it does.
    pw = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=2).hash(PASSWORD)
    now = datetime.now(UTC).isoformat()
    _copy_text(cur, "users", "id, email, full_name, password_hash, active, "
               "must_change_password, session_version, totp_enabled, failed_logins, "
               "created_at, updated_at",
               [(i, email(i), f"{role(i).title()} {i:02d}", pw, "t", "f", 1, "f", 0, now, now)
                for i in range(1, USERS + 1)])
    _copy_text(cur, "user_roles", "user_id, role", [(i, role(i)) for i in range(1, USERS + 1)])


def _audit(cur, n: int, key: str) -> None:
    """n chained entries over SPAN_DAYS ending a minute ago, written with COPY in batches."""
    from qaportal import audit, audit_anchor

    cols = ("seq, occurred_at, actor_id, actor_label, action, object_type, object_id, "
            "source_ip, details, prev_hash, entry_hash, entry_mac")
    step = timedelta(days=SPAN_DAYS) / n
    t0 = datetime.now(UTC) - timedelta(days=SPAN_DAYS, minutes=1)
    prev, rows = audit.GENESIS, []
    for seq in range(1, n + 1):
        at = t0 + seq * step
        actor = 1 + seq % USERS
        fields = {"seq": seq, "occurred_at": audit._iso(at), "actor_id": actor,
                  "actor_label": email(actor), "action": AUDIT_ACTIONS[seq % 6],
                  "object_type": "studies", "object_id": str(1 + seq % 100_000),
                  "source_ip": "127.0.0.1", "details": {"n": seq % 7}, "prev_hash": prev}
        h = audit.entry_hash(fields)
        rows.append((seq, at.isoformat(), actor, fields["actor_label"], fields["action"],
                     "studies", fields["object_id"], "127.0.0.1",
                     json.dumps(fields["details"]), prev, h, audit_anchor.entry_mac(key, h)))
        prev = h
        if len(rows) == 50_000 or seq == n:
            _copy_text(cur, "audit_events", cols, rows)
            rows = []
    cur.execute("UPDATE audit_head SET seq = %s, entry_hash = %s WHERE id = 1", (n, prev))


def _rebuild_summary(url: str) -> str:
    """Count the seeded reviews into the statistics' summary tables: the rows above bypassed
    the app, whose ORM keeps them up to date (qaportal/models/review_counts.py)."""
    import sqlalchemy as sa

    import qaportal.studies  # noqa: F401 - first, as the app does (qaportal.qa imports demo steps)
    from qaportal.qa import workload
    from qaportal.qa.summary import rebuild

    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with engine.begin() as connection:
            written = rebuild(connection)
            written["reviewer_status_counts"] = workload.rebuild(connection)
    finally:
        engine.dispose()
    return ", ".join(f"{table} {n:,} rows" for table, n in written.items())


def seed(url: str, stage: str, audit_key: str, say=print) -> dict[str, float]:
    """Fill the migrated, empty database at url (postgresql://...); return seconds per step."""
    size = STAGES[stage]
    params = {"studies": size["studies"], "opinions": min(size["opinions"], size["studies"]),
              "assignments": size["reviews"] * 20 // 19 + 1,
              # one '3b' in `every` reviews: about `cases` cases
              "every": max(2, size["reviews"] // size["cases"])}
    times: dict[str, float] = {}
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        t = time.perf_counter()
        _users(cur)
        for statement in BULK:
            table = statement.split()[2]
            s = time.perf_counter()
            sql = statement
            for name, value in params.items():
                sql = sql.replace(f":{name}", str(int(value)))
            cur.execute(sql)
            say(f"  {table}: {cur.rowcount:,} rows in {time.perf_counter() - s:.1f} s")
        for table in SEQUENCES:
            setval = (f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                      f"(SELECT max(id) FROM {table}))")  # our own table names
            cur.execute(setval)
        conn.commit()
        times["tables"] = time.perf_counter() - t
    t = time.perf_counter()
    summary = _rebuild_summary(url)
    times["summary"] = time.perf_counter() - t
    say(f"  statistics summary (qaportal stats rebuild): {summary} in {times['summary']:.1f} s")
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        t = time.perf_counter()
        _audit(cur, size["audit"], audit_key)
        conn.commit()
        times["audit"] = time.perf_counter() - t
        say(f"  audit_events: {size['audit']:,} chained entries in {times['audit']:.1f} s")
    with psycopg.connect(url, autocommit=True) as conn:
        t = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        times["analyze"] = time.perf_counter() - t
    return times
