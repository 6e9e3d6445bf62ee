"""Seed a migrated, empty PostgreSQL database with a department at scale (benchmarks/scale.py).

Every table is written with COPY FROM STDIN (psycopg 3 `cursor.copy()`) into the schema of
`qaportal db upgrade` with every constraint, index and trigger on: the users with a real
Argon2id hash (one hash, reused); the bulk tables (studies, reads, assignments, reviews,
cases, committee seats, notifications, opinion requests) as rows made in Python one at a
time (Department), sent in batches through psycopg's writer thread, so that the server
stores one batch while Python makes the next and no table is ever held in memory; the audit
entries, alongside on a second connection, as a valid hash chain with their MACs (the
entries' canonical JSON written out and checked against qaportal.audit.entry_hash every
CHECK_EVERY entries, the MACs by qaportal.audit_anchor: `qaportal audit-verify` passes).
Then the sequences are moved past the explicit ids, the statistics' summary tables are
rebuilt (`qaportal stats rebuild`'s code) and the database is VACUUM ANALYZEd.

54 users: 1-30 radiologists (readers, requesters, consultants), 31-50 reviewers (committee
members too), 51-52 QA managers, 53-54 administrators.

Run time, the seed alone (no migration), PostgreSQL 15 defaults, 2 cores shared with other
helpers' tests and benchmarks (load average 5-9), back to back with the INSERT ... SELECT
seed this replaced: stage B 116 s (tables 105 s with the 2M-entry audit chain alongside in
96 s, summary 8 s, VACUUM ANALYZE 3 s) against 274 s (tables 87 s, then the audit chain
168 s); stage A 59 and 61 s against 131 and 98 s (this COPY seed without the audit chain
alongside, nor its written-out JSON: 90 s). Table by table, at stage A under load 2.5-3,
COPY took what INSERT ... SELECT did within the noise (assignments 6.3 s against 5.9 s,
reviews 2.4 against 2.3, studies 1.5 against 1.4): the server's work is the same rows through
the same indexes and constraints; the gain is in the audit chain (pipelined, its JSON
written out, beside the tables).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from hashlib import md5, sha256
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
CHECK_EVERY = 1_000  # audit entries: one in CHECK_EVERY hashed by qaportal.audit too

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

    @cached_property
    def _review_times(self) -> list[tuple[str, str, str]]:
        """(assigned, submitted, due) of the assignments of each read, as COPY text: made
        once per read, not once per assignment (a tenth of the time)."""
        hour, fortnight = timedelta(hours=1), timedelta(days=14)
        return [(f"{at + hour}", f"{at + 2 * hour}", f"{at + fortnight}")
                for at in self.read_at]

    def assignments_rows(self):
        studies, times = self.studies, self._review_times
        for g in range(1, self.assignments + 1):
            read = 1 + (g - 1) % studies
            assigned, submitted, due = times[read]
            yield (f"{g}\t{read}\t{31 + (read + (g - 1) // studies) % 20}\tadhoc\tt\t"
                   f"{'submitted' if g % 20 else 'assigned'}\t{assigned}\t\t"
                   f"{submitted if g % 20 else NULL}\t{due}\n")

    def reviews_rows(self):
        """A review of each submitted assignment, with the assignment's id."""
        studies, times, every = self.studies, self._review_times, self.every
        for g in range(1, self.assignments + 1):
            if g % 20:
                score = "3b" if g % every == 1 else "2a" if g % 7 == 2 else "1"
                found = "perceptual\tMissed finding." if score != "1" else f"{NULL}\t"
                yield f"{g}\t{g}\t{score}\t\t{found}\tf\t{times[1 + (g - 1) % studies][1]}\n"

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
        labels = ["", *(email(i) for i in range(1, USERS + 1))]
        prev, key, mac = self.last, self.key, audit_anchor.entry_mac
        for seq in range(1, self.n + 1):
            at = audit._iso(t0 + seq * step)  # the text hashed; PostgreSQL reads it as UTC
            actor, action, n = 1 + seq % USERS, AUDIT_ACTIONS[seq % 6], seq % 7
            # audit.entry_hash's canonical JSON of the entry (keys sorted, no spaces) written
            # out: a third of its time; checked against entry_hash every CHECK_EVERY entries
            text = (f'{{"action":"{action}","actor_id":{actor},"actor_label":"{labels[actor]}",'
                    f'"details":{{"n":{n}}},"object_id":"{1 + seq % 100_000}",'
                    f'"object_type":"studies","occurred_at":"{at}","prev_hash":"{prev}",'
                    f'"seq":{seq},"source_ip":"127.0.0.1"}}')
            h = sha256(text.encode("ascii")).hexdigest()
            if seq % CHECK_EVERY == 1 and h != audit.entry_hash(json.loads(text)):
                raise RuntimeError(f"entry {seq}: the seed's entry text is not entry_hash's")
            yield (f"{seq}\t{at}\t{actor}\t{labels[actor]}\t{action}\tstudies\t"
                   f"{1 + seq % 100_000}\t127.0.0.1\t{{\"n\": {n}}}\t{prev}\t{h}\t{mac(key, h)}\n")
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


def _seed_audit(url: str, n: int, key: str) -> tuple[int, float]:
    """Write the audit chain and its head in a transaction of its own: (entries, seconds)."""
    t = time.perf_counter()
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        chain = AuditChain(n, key)
        n = _copy(cur, "audit_events", AUDIT_COLUMNS, chain.rows())
        cur.execute("UPDATE audit_head SET seq = %s, entry_hash = %s WHERE id = 1",
                    (n, chain.last))
    return n, time.perf_counter() - t


def seed(url: str, stage: str, audit_key: str, say=print) -> dict[str, float]:
    """Fill the migrated, empty database at url (postgresql://...); return seconds per step
    (tables: users and bulk tables; audit: the chain, written alongside; summary; analyze).

    The audit chain is written on a second connection, from a second thread, while the bulk
    tables are (it needs only the users): two server processes at work, Python making
    both streams of rows (its share is the smaller one)."""
    department = Department(stage, datetime.now(UTC))
    times: dict[str, float] = {}
    t = time.perf_counter()
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        _users(cur)
    with ThreadPoolExecutor(1) as pool:
        audit = pool.submit(_seed_audit, url, STAGES[stage]["audit"], audit_key)
        with psycopg.connect(url) as conn, conn.cursor() as cur:
            for table, cols, rows in BULK:
                s = time.perf_counter()
                n = _copy(cur, table, cols, getattr(department, rows)())
                say(f"  {table}: {n:,} rows in {time.perf_counter() - s:.1f} s")
            for table in SEQUENCES:
                setval = (f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                          f"(SELECT max(id) FROM {table}))")  # our own table names
                cur.execute(setval)
        times["tables"] = time.perf_counter() - t
        s = time.perf_counter()
        summary = _rebuild_summary(url)
        times["summary"] = time.perf_counter() - s
        say(f"  statistics summary (qaportal stats rebuild): {summary} in "
            f"{times['summary']:.1f} s")
        n, times["audit"] = audit.result()
        say(f"  audit_events: {n:,} chained entries in {times['audit']:.1f} s (alongside the "
            f"tables; all done {time.perf_counter() - t:.1f} s after the start)")
    with psycopg.connect(url, autocommit=True) as conn:
        s = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        times["analyze"] = time.perf_counter() - s
    return times
