"""Seed a migrated, empty PostgreSQL database with a department at scale (benchmarks/scale.py).

Every table is written with COPY FROM STDIN (psycopg 3 `cursor.copy()`) into the schema of
`qaportal db upgrade` with every constraint, index and trigger on: the users with a real
Argon2id hash (one hash, reused); the bulk tables (studies, reads, assignments, reviews,
cases, committee seats, notifications, opinion requests) as rows made in Python one at a
time (Department), sent in batches through psycopg's writer thread, so that the server
stores one batch while Python makes the next and no table is ever held in memory; the audit
entries as a valid hash chain with their MACs (computed by qaportal.audit and
qaportal.audit_anchor, so `qaportal audit-verify` passes). Then the sequences are moved past
the explicit ids, the statistics' summary tables are rebuilt (`qaportal stats rebuild`'s
code) and the database is VACUUM ANALYZEd.

54 users: 1-30 radiologists (readers, requesters, consultants), 31-50 reviewers (committee
members too), 51-52 QA managers, 53-54 administrators.

Run time (2 cores shared with a page benchmark on another database, load average 2.5-3):
stage A 44 s (tables 14 s, summary 2 s, 1M audit entries 24 s, VACUUM ANALYZE 3 s) where
the INSERT ... SELECT seed with unpipelined audit batches took 56 s (tables 13 s, audit 40 s).
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from hashlib import md5
from itertools import islice

import psycopg
from psycopg.copy import QueuedLibpqWriter

PASSWORD = "scale-bench-password-1234"  # noqa: S105 - the seeded accounts' throwaway password
READERS, REVIEWERS = 30, 20
FIRST_REVIEWER = READERS + 1
QA_IDS, ADMIN_IDS = (51, 52), (53, 54)
USERS = 54
SPAN_DAYS = 730
BATCH = 2_000  # COPY lines a write: a few hundred kB

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


DESCRIPTIONS = (("CT CHEST W CONTRAST", "CT", "CHEST"), ("MR BRAIN WO", "MR", "HEAD"),
                ("XR CHEST 2V", "CR", "CHEST"), ("US ABDOMEN", "US", "ABDOMEN"),
                ("CT ABD PELVIS", "CT", "ABDOMEN"), ("MG SCREENING", "MG", "BREAST"))
CASE_STATUSES = ("closed", "closed", "closed", "decided", "open", "committee")
BIRTH_EPOCH = date(1940, 1, 1)
NULL = "\\N"


class Department:
    """A stage's rows, made on demand as lines of COPY's text format (no value holds a tab,
    a newline or a backslash). Reads span SPAN_DAYS ending at `now`, one a step; every study
    has one final read, reviewed in turn by up to 20 reviewers; one assignment in twenty is
    open; one review in `every` is a significant discrepancy ('3b') with a case, one in
    seven a minor one ('2a')."""

    def __init__(self, stage: str, now: datetime):
        size = STAGES[stage]
        self.studies = size["studies"]
        self.opinions = min(size["opinions"], self.studies)
        self.assignments = size["reviews"] * 20 // 19 + 1
        self.every = max(2, size["reviews"] // size["cases"])  # about `cases` cases
        self.now = now
        step = timedelta(days=SPAN_DAYS) / self.studies
        # study g, its read g: made and finalized g steps before now
        self.read_at = [now - g * step for g in range(self.studies + 1)]

    def studies_rows(self):
        for g in range(1, self.studies + 1):
            at = self.read_at[g]
            description, modality, body_part = DESCRIPTIONS[g % 6]
            count = 120 + g % 300
            birth = BIRTH_EPOCH + timedelta(days=(g * 7) % 25000)
            key = md5(b"%d" % g, usedforsecurity=False).hexdigest()
            yield (f"{g}\t2.25.{100000000000 + g}\t{1 + g % 30}\tSCALE^PATIENT{g}\tPID{g}\t"
                   f"{'FM'[g % 2]}\t{birth}\tACC{g}\t{at.date()}\t{description}\t{modality}\t"
                   f"{body_part}\tGeneral Hospital\tREF^DOCTOR\tCA\tHistory.\tQuestion?\t3\t"
                   f"{count}\t{count * 524288}\tf\t{key}\t"
                   f"{-17 - g % 30}\tQA-{g}\t{at}\t{at}\n")

    def reads_rows(self):
        report = "FINDINGS: No acute abnormality. IMPRESSION: Normal study."
        for g in range(1, self.studies + 1):
            at, reader = self.read_at[g], 1 + g % 30
            yield f"{g}\t{g}\t{reader}\t{report}\t{at}\t{reader}\t{at}\t{at}\n"

    def _read(self, assignment: int) -> int:
        return 1 + (assignment - 1) % self.studies

    def assignments_rows(self):
        hour, fortnight = timedelta(hours=1), timedelta(days=14)
        for g in range(1, self.assignments + 1):
            read = self._read(g)
            reviewer = 31 + (read + (g - 1) // self.studies) % 20
            at = self.read_at[read]
            yield (f"{g}\t{read}\t{reviewer}\tadhoc\tt\t"
                   f"{'submitted' if g % 20 else 'assigned'}\t{at + hour}\t\t"
                   f"{at + 2 * hour if g % 20 else NULL}\t{at + fortnight}\n")

    def reviews_rows(self):
        """A review of each submitted assignment, with the assignment's id."""
        two_hours, every = timedelta(hours=2), self.every
        for g in range(1, self.assignments + 1):
            if g % 20:
                score = "3b" if g % every == 1 else "2a" if g % 7 == 2 else "1"
                found = "perceptual\tMissed finding." if score != "1" else f"{NULL}\t"
                at = self.read_at[self._read(g)] + two_hours
                yield f"{g}\t{g}\t{score}\t\t{found}\tf\t{at}\n"

    def _cases(self):
        """(case id, review id, opened at, status) of each '3b' review, in review order."""
        two_hours = timedelta(hours=2)
        reviews = (g for g in range(1, self.assignments + 1, self.every) if g % 20)
        for case, review in enumerate(reviews, 1):
            at = self.read_at[self._read(review)] + two_hours
            yield case, review, at, CASE_STATUSES[review % 6]

    def cases_rows(self):
        for case, review, at, status in self._cases():
            reader = 1 + self._read(review) % 30
            if status in ("decided", "closed"):
                decision = f"3b\tupheld\tAgreed.\t{at}"
            else:
                decision = f"{NULL}\t{NULL}\t\t{NULL}"
            yield f"{case}\t{review}\t{reader}\t{status}\t1\t{at}\t{at}\t{decision}\t\n"

    def committee_rows(self):
        for case, _review, at, _status in self._cases():
            for k in range(3):
                yield f"{case}\t{31 + (3 * case + k) % 20}\t{at}\n"

    def notifications_rows(self):
        for g in range(1, self.studies + 1):
            yield f"{1 + g % USERS}\tnote\tA note.\t\t{self.now - g * timedelta(minutes=10)}\n"

    def opinions_rows(self):
        half_hour, two_days = timedelta(minutes=30), timedelta(days=2)
        for g in range(1, self.opinions + 1):
            consultant = 1 + (g + 7) % 30
            pool, named = (NULL, consultant) if g % 2 else ("neuro", NULL)
            held = consultant if g % 2 or g % 20 else NULL
            status = "open" if g % 20 == 0 else "accepted" if g % 20 == 1 else "signed"
            at = self.now - g * half_hour
            yield (f"{g}\t{g}\t{1 + g % 30}\topinion\tQ?\t\t\t\troutine\t{pool}\t{named}\t"
                   f"{held}\tf\t{status}\t{at}\t{at + two_days}\t\n")


# (table, its columns as the rows give them, the Department's rows), in foreign-key order
BULK = (
    ("studies", "id, study_uid, owner_id, patient_name, patient_id, patient_sex, "
     "patient_birth_date, accession_number, study_date, study_description, modalities, "
     "body_part, institution, referring_physician, jurisdiction, clinical_history, "
     "clinical_question, series_count, instance_count, size_bytes, burned_in_suspected, "
     "deid_key, deid_date_shift_days, pseudonym, created_at, updated_at", "studies_rows"),
    ("original_reads", "id, study_id, reader_id, report_text, finalized_at, entered_by_id, "
     "created_at, updated_at", "reads_rows"),
    ("review_assignments", "id, read_id, reviewer_id, source, deidentified, status, "
     "assigned_at, impression, submitted_at, due_at", "assignments_rows"),
    ("reviews", "id, assignment_id, score, unable_reason, category, comment, learning_case, "
     "submitted_at", "reviews_rows"),
    ("discrepancy_cases", "id, review_id, reader_id, status, round, opened_at, status_at, "
     "final_score, outcome, rationale, decided_at, reader_response", "cases_rows"),
    ("committee_members", "case_id, user_id, added_at", "committee_rows"),
    ("notifications", "user_id, kind, message, link, created_at", "notifications_rows"),
    ("opinion_requests", "id, study_id, requester_id, request_type, clinical_question, "
     "clinical_history, preliminary_read, payer_criteria, priority, pool, "
     "named_consultant_id, consultant_id, deidentified, status, requested_at, due_at, "
     "cancel_reason", "opinions_rows"),
)
SEQUENCES = ("users", "studies", "original_reads", "review_assignments", "reviews",
             "discrepancy_cases", "opinion_requests")
AUDIT_ACTIONS = ("auth.login", "study.viewed", "review.submitted", "opinion.signed",
                 "qa.identities_viewed", "report.exported")


def _copy(cur, table: str, cols: str, lines) -> int:
    """COPY the text-format lines into table (every constraint and index on); return their
    number. Batches go through psycopg's writer thread: the server stores one batch while
    Python makes the next, and only a bounded queue of them is ever in memory."""
    lines, n = iter(lines), 0
    with cur.copy(f"COPY {table} ({cols}) FROM STDIN",  # our own table and column names
                  writer=QueuedLibpqWriter(cur)) as copy:
        while batch := list(islice(lines, BATCH)):
            copy.write("".join(batch))
            n += len(batch)
    return n


def _users(cur) -> None:
    from argon2 import PasswordHasher

    # qaportal.passwords' defaults (Argon2id, t=3, m=64 MiB, p=2): sign-in costs what it does.
    pw = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=2).hash(PASSWORD)
    now = datetime.now(UTC)
    _copy(cur, "users", "id, email, full_name, password_hash, active, must_change_password, "
          "session_version, totp_enabled, failed_logins, created_at, updated_at",
          (f"{i}\t{email(i)}\t{role(i).title()} {i:02d}\t{pw}\tt\tf\t1\tf\t0\t{now}\t{now}\n"
           for i in range(1, USERS + 1)))
    _copy(cur, "user_roles", "user_id, role", (f"{i}\t{role(i)}\n" for i in range(1, USERS + 1)))


AUDIT_COLUMNS = ("seq, occurred_at, actor_id, actor_label, action, object_type, object_id, "
                 "source_ip, details, prev_hash, entry_hash, entry_mac")


class AuditChain:
    """n chained entries over SPAN_DAYS ending a minute ago, as COPY lines: each entry's hash
    and MAC are qaportal.audit's and qaportal.audit_anchor's, so `qaportal audit-verify`
    passes. `last` is the hash of the last entry made."""

    def __init__(self, n: int, key: str):
        from qaportal import audit

        self.n, self.key = n, key
        self.last = audit.GENESIS

    def rows(self):
        from qaportal import audit, audit_anchor

        step = timedelta(days=SPAN_DAYS) / self.n
        t0 = datetime.now(UTC) - timedelta(days=SPAN_DAYS, minutes=1)
        prev, key = self.last, self.key
        for seq in range(1, self.n + 1):
            at = audit._iso(t0 + seq * step)  # the text hashed; PostgreSQL reads it as UTC
            actor = 1 + seq % USERS
            fields = {"seq": seq, "occurred_at": at, "actor_id": actor,
                      "actor_label": email(actor), "action": AUDIT_ACTIONS[seq % 6],
                      "object_type": "studies", "object_id": str(1 + seq % 100_000),
                      "source_ip": "127.0.0.1", "details": {"n": seq % 7}, "prev_hash": prev}
            h = audit.entry_hash(fields)
            yield (f"{seq}\t{at}\t{actor}\t{fields['actor_label']}\t{fields['action']}\t"
                   f"studies\t{fields['object_id']}\t127.0.0.1\t{{\"n\": {seq % 7}}}\t{prev}\t"
                   f"{h}\t{audit_anchor.entry_mac(key, h)}\n")
            prev = self.last = h


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
    department = Department(stage, datetime.now(UTC))
    times: dict[str, float] = {}
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        t = time.perf_counter()
        _users(cur)
        for table, cols, rows in BULK:
            s = time.perf_counter()
            n = _copy(cur, table, cols, getattr(department, rows)())
            say(f"  {table}: {n:,} rows in {time.perf_counter() - s:.1f} s")
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
        chain = AuditChain(STAGES[stage]["audit"], audit_key)
        n = _copy(cur, "audit_events", AUDIT_COLUMNS, chain.rows())
        cur.execute("UPDATE audit_head SET seq = %s, entry_hash = %s WHERE id = 1",
                    (n, chain.last))
        conn.commit()
        times["audit"] = time.perf_counter() - t
        say(f"  audit_events: {n:,} chained entries in {times['audit']:.1f} s")
    with psycopg.connect(url, autocommit=True) as conn:
        t = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        times["analyze"] = time.perf_counter() - t
    return times
