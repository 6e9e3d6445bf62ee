"""Time the PDF reports on a year of data: OPPE, department and the case packet.

Seeds a temporary SQLite instance with bulk inserts (SQLAlchemy core executemany): a
department of 50 readers, one of them with 20,000 reads and 5,000 reviews in the year,
the others 1,000 reads and 300 reviews each, cases for every significant score, and
2,000 second-opinion requests. The case packet's request is made through the services on
a CT series generated with qaportal.dicom.generate and imported into the image store
(300 slices by default), so rendering the key images and re-hashing every stored file
are part of its time. Each report is then made through
qaportal.reports.service.create_export (what the web page and the CLI call) in a fresh
process, so its peak memory is its own: the process itself (RUSAGE_SELF) and the
`python -m qaportal.pdf.worker` render subprocess (RUSAGE_CHILDREN).
Run from the repository root: `python benchmarks/reports.py [--readers 50] [--reviews 5000]`.
Targets: each report < 5 s, < 500 MB and a few pages (MAX_PAGES). A report that fails,
misses a target or (case packet) embeds fewer than 4 key images makes the exit status 1.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402

# qaportal is imported in the worker processes only: a forked child's peak RSS starts at
# its parent's size, so the parent stays small to keep the children's figures honest.

TARGET_SECONDS, TARGET_MB = 5.0, 500
MAX_PAGES = {"oppe": 8, "department": 10, "case": 8}  # "a few pages" for a year of data
KEY_IMAGES = 4
CASE_FILE = "case.json"  # the case packet's request id, written by the seeding process
YEAR_END = date.today()
YEAR_START = YEAR_END - timedelta(days=364)
MODALITIES = ("CT", "MR", "CR", "US", "CT/PT", "MG")
SCORES = (("1", 0.94), ("2a", 0.03), ("2b", 0.012), ("3a", 0.01), ("3b", 0.005),
          ("unable", 0.003))
SUBJECT = "subject@bench.test"


def make_app(root: Path):
    """Return an app on root/instance with its SQLite database."""
    from qaportal import create_app

    return create_app({
        "INSTANCE_PATH": str(root / "instance"), "SECRET_KEY": "bench-secret-key",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{root / 'bench.sqlite'}", "LOCAL": True,
        "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 8, "ARGON2_PARALLELISM": 1,
    })


def _score(rng: random.Random) -> str:
    x, acc = rng.random(), 0.0
    for score, share in SCORES:
        acc += share
        if x < acc:
            return score
    return "1"


def seed(root: Path, readers: int, subject_reviews: int) -> dict:
    """Fill the database; return counts."""
    from qaportal.extensions import db
    from qaportal.models import (
        DiscrepancyCase,
        OpinionRequest,
        OriginalRead,
        Review,
        ReviewAssignment,
        SamplingRule,
        SamplingRun,
        Study,
        User,
        UserRole,
    )
    from qaportal.passwords import hash_password

    rng = random.Random(6)
    app = make_app(root)
    with app.app_context():
        db.create_all()
        ex = db.session.execute
        pw = hash_password("bench-password-123456")
        now = datetime.now(UTC)
        users = [{"email": SUBJECT, "full_name": "Sam Subject"}]
        users += [{"email": f"reader{i}@bench.test", "full_name": f"Reader {i}"}
                  for i in range(2, readers + 1)]
        users += [{"email": f"reviewer{i}@bench.test", "full_name": f"Reviewer {i}"}
                  for i in range(1, 13)]
        users += [{"email": "qa@bench.test", "full_name": "Quinn Quality"}]
        ex(sa.insert(User), [{**u, "password_hash": pw, "active": True, "created_at": now,
                              "updated_at": now} for u in users])
        ids = dict(ex(sa.select(User.email, User.id)).all())
        reader_ids = [ids[SUBJECT]] + [ids[f"reader{i}@bench.test"]
                                       for i in range(2, readers + 1)]
        reviewer_ids = [ids[f"reviewer{i}@bench.test"] for i in range(1, 13)]
        qa_id = ids["qa@bench.test"]
        ex(sa.insert(UserRole), [{"user_id": i, "role": "radiologist"} for i in reader_ids]
           + [{"user_id": i, "role": "reviewer"} for i in reviewer_ids]
           + [{"user_id": qa_id, "role": "qa_manager"}])
        rule = SamplingRule(name="Bench", method="percent", percent=5.0, created_by_id=qa_id)
        run = SamplingRun(rule=rule, seed=1, params={}, candidates=[], selected=[])
        db.session.add_all([rule, run])
        db.session.flush()

        plan = [(reader_ids[0], subject_reviews * 4, subject_reviews)]
        plan += [(rid, 1000, 300) for rid in reader_ids[1:]]
        span = (YEAR_END - YEAR_START).days * 86400
        study_rows, read_meta = [], []
        for rid, reads, reviewed in plan:
            for j in range(reads):
                n = len(study_rows)
                study_rows.append({
                    "study_uid": f"2.25.{uuid.uuid4().int}", "owner_id": rid,
                    "modalities": rng.choice(MODALITIES), "jurisdiction": "CA",
                    "deid_key": secrets.token_hex(16), "pseudonym": f"B-{n:08d}",
                    "patient_name": f"BENCH^{n}", "created_at": now, "updated_at": now,
                })
                at = datetime.combine(YEAR_START, datetime.min.time(), UTC) + timedelta(
                    seconds=rng.randrange(span))
                read_meta.append((rid, at, j < reviewed))
        ex(sa.insert(Study), study_rows)
        study_ids = list(ex(sa.select(Study.id).order_by(Study.id)).scalars())
        ex(sa.insert(OriginalRead), [
            {"study_id": sid, "reader_id": rid, "report_text": "Findings.", "finalized_at": at,
             "entered_by_id": rid, "created_at": now, "updated_at": now}
            for sid, (rid, at, _) in zip(study_ids, read_meta, strict=True)])
        reads = ex(sa.select(OriginalRead.id, OriginalRead.reader_id, OriginalRead.finalized_at)
                   .order_by(OriginalRead.id)).all()
        sampled = [r for r, (_, _, chosen) in zip(reads, read_meta, strict=True) if chosen]
        assignments = []
        for k, (read_id, _reader, at) in enumerate(sampled):
            done = at + timedelta(days=3)
            assignments.append({
                "read_id": read_id, "reviewer_id": reviewer_ids[k % len(reviewer_ids)],
                "source": "sample", "run_id": run.id, "deidentified": True,
                "status": "submitted", "assigned_at": at, "due_at": at + timedelta(days=14),
                "impression": "", "revealed_at": done, "submitted_at": done})
        ex(sa.insert(ReviewAssignment), assignments)
        assignment_ids = list(ex(sa.select(ReviewAssignment.id)
                                 .order_by(ReviewAssignment.id)).scalars())
        review_rows = []
        for aid in assignment_ids:
            score = _score(rng)
            disc = score in ("2a", "2b", "3a", "3b")
            review_rows.append({
                "assignment_id": aid, "score": score,
                "unable_reason": "Motion." if score == "unable" else "",
                "category": rng.choice(("perceptual", "interpretive")) if disc else None,
                "comment": "Missed finding." if disc else "", "learning_case": False,
                "submitted_at": now})
        ex(sa.insert(Review), review_rows)
        significant = ex(
            sa.select(Review.id, Review.score, OriginalRead.reader_id)
            .join(ReviewAssignment, ReviewAssignment.id == Review.assignment_id)
            .join(OriginalRead, OriginalRead.id == ReviewAssignment.read_id)
            .where(Review.score.in_(("2b", "3a", "3b"))).order_by(Review.id)).all()
        case_rows = []
        for k, (review_id, score, reader_id) in enumerate(significant):
            opened = now - timedelta(days=rng.randrange(1, 200))
            status = ("closed", "decided", "committee", "open")[k % 4] if k % 5 else "closed"
            decided = status in ("decided", "closed")
            final = (score if k % 3 else "2a") if decided else None
            case_rows.append({
                "review_id": review_id, "reader_id": reader_id, "status": status, "round": 1,
                "opened_at": opened,
                "status_at": opened, "final_score": final,
                "outcome": ("upheld" if final == score else "downgraded") if decided else None,
                "rationale": "Consensus." if decided else "", "reader_response": ""})
        ex(sa.insert(DiscrepancyCase), case_rows)
        opinion_rows = []
        for k in range(2000):
            prio = ("stat", "urgent", "routine")[k % 3]
            target = {"stat": 1, "urgent": 4, "routine": 48}[prio]
            req = datetime.combine(YEAR_START, datetime.min.time(), UTC) + timedelta(
                seconds=rng.randrange(span))
            minutes = int(target * 60 * rng.uniform(0.2, 1.4))
            consultant = reader_ids[0] if k % 5 == 0 else reader_ids[1 + k % (readers - 1)]
            opinion_rows.append({
                "study_id": study_ids[k], "requester_id": reader_ids[-1 - k % 3],
                "request_type": "opinion", "clinical_question": "Second look?",
                "clinical_history": "", "preliminary_read": "", "payer_criteria": "",
                "priority": prio, "pool": None, "named_consultant_id": consultant,
                "consultant_id": consultant, "deidentified": False, "status": "signed",
                "requested_at": req, "due_at": req + timedelta(hours=target),
                "accepted_at": req, "signed_at": req + timedelta(minutes=minutes),
                "turnaround_minutes": minutes, "cancel_reason": ""})
        ex(sa.insert(OpinionRequest), opinion_rows)
        db.session.commit()
        return {"studies": len(study_rows), "reviews": len(review_rows),
                "cases": len(case_rows), "opinions": len(opinion_rows)}


def seed_case(root: Path, slices: int) -> dict:
    """A coverage review with a signed opinion and an addendum on a generated CT series."""
    from qaportal.dicom import generate_ct_series
    from qaportal.extensions import db
    from qaportal.models import BoardCertification, License, Study, User, UserSubspecialty
    from qaportal.opinions import service, signing
    from qaportal.passwords import hash_password
    from qaportal.studies import jobs
    from qaportal.studies import service as study_service

    password = "bench-case-password-1"
    app = make_app(root)
    with app.app_context():
        today = date.today()
        people = []
        for email, name in (("requester@bench.test", "Rhea Requester"),
                            ("consultant@bench.test", "Cyrus Consultant")):
            user = User(email=email, full_name=name, password_hash=hash_password(password))
            user.set_roles(["radiologist"])
            user.licenses.append(License(jurisdiction="CA", number=f"CA-{len(people) + 1}",
                                         valid_from=today - timedelta(days=900),
                                         valid_to=today + timedelta(days=400)))
            db.session.add(user)
            people.append(user)
        requester, consultant = people
        consultant.subspecialties = [UserSubspecialty(subspecialty="body")]
        db.session.add(BoardCertification(user=consultant, board="American Board of Radiology",
                                          specialty="Diagnostic Radiology"))
        db.session.commit()
        t0 = time.perf_counter()
        folder = root / "case-ct"
        uid = f"2.25.{uuid.uuid4().int}"
        generate_ct_series(folder, slices=slices, patient=("CASE^PATIENT", "CASE0001"),
                           study_uid=uid)
        batch = jobs.new_batch(requester, "cli")
        jobs.import_files([folder], requester.id, batch.id)
        study = db.session.scalar(sa.select(Study).where(Study.study_uid == uid))
        assert study is not None and study.instance_count == slices, "case study not imported"
        study.jurisdiction = "CA"
        study_service.set_original_read(study, by=requester, reader=requester,
                                        finalized_at=None,
                                        report_text="Indeterminate 4 cm mass in the left lobe.")
        req = service.create_request(
            study, requester, priority="urgent", pool="body", request_type="coverage_review",
            question="Does the imaging meet the payer's threshold?",
            criteria="Mass larger than 3 cm with documented growth.")
        service.claim(req, consultant)
        service.record_view(req, consultant, "full")
        signing.save_draft(req, consultant, {
            "findings": "Solid mass.", "impression": "Solid mass of 4.2 cm.",
            "agreement": "minor", "recommendations": "Surgical consult.",
            "coverage_answer": "supported", "coverage_text": "Meets the criteria."})
        signing.sign(req, consultant, password)
        signing.add_addendum(req, consultant, "Prior comparison: interval growth.", password)
        db.session.commit()
        info = {"request": req.id, "instances": study.instance_count,
                "mb": round(sum(i.size_bytes for s in study.series for i in s.instances)
                            / 1048576), "seconds": round(time.perf_counter() - t0, 1)}
        (root / CASE_FILE).write_text(json.dumps(info))
        return info


def measure(root: Path, kind: str) -> dict:
    """Make one report through the service in this (fresh) process; return its figures."""
    from qaportal.extensions import db
    from qaportal.reports import service
    from qaportal.reports.registry import REPORTS

    app = make_app(root)
    with app.app_context():
        params: dict = {"date_from": YEAR_START, "date_to": YEAR_END, "confidential": True}
        if kind == "oppe":
            params["radiologist"] = SUBJECT
        elif kind == "department":
            params["show_names"] = False
        elif kind == "case":
            case = json.loads((root / CASE_FILE).read_text())
            params = {"request": case["request"], "deidentified": False, "confidential": False}
        t0 = time.perf_counter()
        export, pdf = service.create_export(kind, params, None, label="benchmark")
        total = time.perf_counter() - t0
        db.session.commit()
        t0 = time.perf_counter()
        REPORTS[kind].build_context(params, None)  # the statistics queries alone (warm)
        build = time.perf_counter() - t0
        me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        return {"kind": kind, "seconds": total, "build_seconds": build,
                "render_seconds": pdf.seconds, "pages": export.page_count,
                "images": pdf.data.count(b"/Subtype /Image"),
                "self_mb": me, "render_mb": child, "peak_mb": me + child}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--reviews", type=int, default=5000,
                        help="reviews of the one radiologist (reads: 4 times as many)")
    parser.add_argument("--case-slices", type=int, default=300,
                        help="slices of the generated CT series behind the case packet")
    parser.add_argument("--measure", nargs=2, metavar=("ROOT", "KIND"), help=argparse.SUPPRESS)
    parser.add_argument("--seed", metavar="ROOT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), args.measure[1])))
        return
    if args.seed:
        counts = seed(Path(args.seed), args.readers, args.reviews)
        counts["case"] = seed_case(Path(args.seed), args.case_slices)
        print(json.dumps(counts))
        return
    with tempfile.TemporaryDirectory(prefix="qaportal-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, __file__, "--seed", str(root), "--readers",
                              str(args.readers), "--reviews", str(args.reviews),
                              "--case-slices", str(args.case_slices)],
                             capture_output=True, text=True)
        if out.returncode != 0:
            print(f"seeding FAILED:\n{out.stderr[-3000:]}")
            sys.exit(1)
        counts = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"seeded {counts} for {args.readers} readers in "
              f"{time.perf_counter() - t0:.1f} s")
        failed = False
        for kind in ("oppe", "department", "case"):
            out = subprocess.run([sys.executable, __file__, "--measure", str(root), kind],
                                 capture_output=True, text=True)
            if out.returncode != 0:  # a failing report fails the benchmark
                failed = True
                print(f"{kind:11s} FAILED:\n{out.stderr[-3000:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            problems = []
            if r["seconds"] >= TARGET_SECONDS:
                problems.append(f"over {TARGET_SECONDS:.0f} s")
            if r["peak_mb"] >= TARGET_MB:
                problems.append(f"over {TARGET_MB} MB")
            if r["pages"] > MAX_PAGES[kind]:
                problems.append(f"more than {MAX_PAGES[kind]} pages")
            if kind == "case" and r["images"] < KEY_IMAGES:
                problems.append(f"{r['images']} key images embedded, expected {KEY_IMAGES}")
            failed |= bool(problems)
            print(f"{kind:11s} {r['seconds']:5.2f} s (data {r['build_seconds']:.2f} s warm, render "
                  f"{r['render_seconds']:.2f} s), {r['pages']} pages (max {MAX_PAGES[kind]}), "
                  f"{r['images']} images, peak {r['peak_mb']:.0f} MB (process "
                  f"{r['self_mb']:.0f} + renderer {r['render_mb']:.0f}) "
                  f"{'OK' if not problems else 'FAILED: ' + '; '.join(problems)}")
        print("(renderer: RUSAGE_CHILDREN, an upper bound: a forked child's peak starts at "
              "its parent's size)")
        sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
