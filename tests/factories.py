"""Factory functions for test data, with sensible defaults."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

from qaportal.extensions import db
from qaportal.models import BoardCertification, License, User, UserSubspecialty
from qaportal.passwords import hash_password

DEFAULT_PASSWORD = "correct-staple-battery-7"
_seq = itertools.count(1)


def make_user(roles=("radiologist",), *, email: str | None = None, full_name: str | None = None,
              password: str = DEFAULT_PASSWORD, active: bool = True,
              subspecialties=(), licenses=(), **kw) -> User:
    """Create a user; licenses is a list of jurisdiction codes or (code, valid_from, valid_to)."""
    n = next(_seq)
    user = User(
        email=email or f"user{n}@example.test",
        full_name=full_name or f"Test User {n}",
        password_hash=hash_password(password),
        active=active,
        **kw,
    )
    user.set_roles(roles)
    user.subspecialties = [UserSubspecialty(subspecialty=s) for s in subspecialties]
    today = date.today()
    for item in licenses:
        code, start, end = (item, today - timedelta(days=365), today + timedelta(days=365)) \
            if isinstance(item, str) else item
        user.licenses.append(License(jurisdiction=code, number=f"{code}-{n}",
                                     valid_from=start, valid_to=end))
    db.session.add(user)
    db.session.flush()
    return user


def make_privilege(user: User, description: str, *, facility: str = "Harbourview Medical Center",
                   granted_on: date | None = None, valid_to: date | None = None,
                   notes: str = ""):
    """Give a user hospital privileges (granted two years ago, valid a year by default)."""
    from qaportal.models import Privilege

    today = date.today()
    priv = Privilege(user=user, facility=facility, description=description,
                     granted_on=granted_on or today - timedelta(days=730),
                     valid_to=valid_to or today + timedelta(days=365), notes=notes)
    db.session.add(priv)
    db.session.flush()
    return priv


def make_certification(user: User, *, expires_on: date | None = None) -> BoardCertification:
    """Give a user a board certification."""
    cert = BoardCertification(user=user, board="American Board of Radiology",
                              specialty="Diagnostic Radiology", expires_on=expires_on)
    db.session.add(cert)
    db.session.flush()
    return cert


def make_study(owner: User, *, modality: str = "CT", jurisdiction: str | None = "CA",
               description: str = "CT CHEST W/O CONTRAST", patient_name: str = "DOE^JANE",
               reader: User | None = None, report: str | None = "No acute findings.",
               finalized_at=None, **kw):
    """Create a study (metadata only, no stored images) with an optional original read."""
    import secrets
    import uuid

    from qaportal.models import OriginalRead, Series, Study, utcnow

    n = next(_seq)
    study = Study(
        study_uid=f"2.25.{uuid.uuid4().int}", owner_id=owner.id, patient_name=patient_name,
        patient_id=f"PID{n:05d}", patient_sex="F", accession_number=f"ACC{n:06d}",
        study_date=kw.pop("study_date", date.today() - timedelta(days=3)),
        study_description=description,
        modalities=modality, jurisdiction=jurisdiction, deid_key=secrets.token_hex(32),
        deid_date_shift_days=-17, pseudonym=f"QA-{secrets.token_hex(4).upper()}",
        series_count=1, **kw,
    )
    study.series.append(Series(series_uid=f"2.25.{uuid.uuid4().int}", modality=modality,
                               series_number=1, series_description="AXIAL"))
    db.session.add(study)
    db.session.flush()
    if report is not None:
        db.session.add(OriginalRead(
            study_id=study.id, reader_id=(reader or owner).id, report_text=report,
            finalized_at=finalized_at or utcnow(), entered_by_id=owner.id,
        ))
        db.session.flush()
    return study


def make_opinion_request(study, requester: User, *, priority: str = "routine",
                         pool: str | None = "neuro", colleague: User | None = None,
                         question: str = "Is there an acute infarct?", **kw):
    """Open a second-opinion request through the service (to a pool unless colleague given)."""
    from qaportal.opinions import service

    if colleague is not None:
        pool = None
    return service.create_request(study, requester, priority=priority, question=question,
                                  pool=pool, colleague=colleague, **kw)


def make_export(user: User | None = None, kind: str = "credentials", **params):
    """Export a real report PDF (rendered, stored, recorded); return (ReportExport, bytes)."""
    from qaportal.reports.service import create_export

    if kind == "credentials":
        params = {"as_of": date.today(), "include_inactive": False, "confidential": False,
                  **params}
    elif kind == "audit":
        params = {"date_from": date.today() - timedelta(days=1), "date_to": date.today(),
                  "actor": None, "action": None, "object_type": None, "object_id": None,
                  "confidential": False, **params}
    elif kind in ("oppe", "fppe", "department"):
        params = {"date_from": date.today() - timedelta(days=365), "date_to": date.today(),
                  "confidential": True, **({"show_names": False} if kind == "department" else {}),
                  **params}
        if kind != "department" and "radiologist" not in params:
            params["radiologist"] = make_user(["radiologist"]).email
        if kind == "fppe":
            params = {"fppe_trigger": "New privileges", "fppe_criteria": "30 reviews",
                      "fppe_conclusion": None, **params}
    elif kind == "committee" and "case" not in params:  # an open case on a new review
        from qaportal.qa.cases import open_case

        reviewer = make_user(["reviewer"])
        review = make_review(make_study(make_user(["radiologist"])).read, reviewer, "3b")
        params = {"case": open_case(review, by=reviewer).id, "confidential": True, **params}
    export, pdf = create_export(kind, params, user, label=None if user else "test")
    return export, pdf.data


def make_export_record(user: User, kind: str = "audit", data: bytes = b"%PDF-1.7\n%test\n"):
    """Record an export and store its bytes without rendering (fast, for permission tests)."""
    import hashlib

    from qaportal.models import ReportExport, utcnow
    from qaportal.reports import storage
    from qaportal.reports.service import new_document_id

    document_id = new_document_id()
    now = utcnow()
    export = ReportExport(
        document_id=document_id, kind=kind, title="Test export", parameters={},
        created_by_id=user.id, created_by_label=user.email, created_at=now,
        sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data), page_count=1,
        storage_key=f"{now:%Y/%m}/{document_id}.pdf",
    )
    storage.write(export.storage_key, data)
    db.session.add(export)
    db.session.flush()
    return export



# --- Peer review and QA ---------------------------------------------------------

def make_rule(by: User, **kw):
    """Create a sampling rule (5 % of every finalized read by default)."""
    from qaportal.models import SamplingRule

    values = {"name": "Routine 5 %", "method": "percent", "percent": 5.0, "due_days": 14,
              "deidentify": True, **kw}
    rule = SamplingRule(created_by_id=by.id, **values)
    db.session.add(rule)
    db.session.flush()
    return rule


def make_run(by: User | None = None, rule=None, seed: int = 1):
    """Create a sampling run (of a new 5 % rule unless one is given)."""
    from qaportal.models import SamplingRun

    if rule is None:
        rule = make_rule(by or make_user(["qa_manager"]))
    run = SamplingRun(rule=rule, seed=seed, params=rule.params(), candidates=[], selected=[])
    db.session.add(run)
    db.session.flush()
    return run


def make_assignment(read, reviewer: User, *, source: str = "sample", deidentified: bool = True,
                    grant: bool = True, due_in_days: int = 14, run=None):
    """Assign a read to a reviewer (sampled by default), granting study access."""
    from qaportal.models import ReviewAssignment, utcnow
    from qaportal.studies.access import grant_access

    now = utcnow()
    if source == "sample" and run is None:
        run = make_run()
    assignment = ReviewAssignment(read_id=read.id, reviewer_id=reviewer.id, source=source,
                                  run_id=run.id if run is not None else None,
                                  deidentified=deidentified, assigned_at=now,
                                  due_at=now + timedelta(days=due_in_days))
    db.session.add(assignment)
    db.session.flush()
    if grant:
        grant_access(read.study, reviewer, mode="deidentified" if deidentified else "full",
                     source=("review_assignment", assignment.id), by=None)
    return assignment


def make_review(read, reviewer: User, score: str = "1", *, category: str | None = None,
                comment: str = "", source: str = "sample", learning_case: bool = False,
                run=None):
    """Create a submitted review of a read (category/comment filled in for discrepancies)."""
    from qaportal.models import Review, utcnow
    from qaportal.models.review import DISCREPANCY_SCORES

    assignment = make_assignment(read, reviewer, source=source, grant=False, run=run)
    now = utcnow()
    assignment.status, assignment.revealed_at, assignment.submitted_at = "submitted", now, now
    if score in DISCREPANCY_SCORES:
        category = category or "perceptual"
        comment = comment or "Missed finding."
    review = Review(assignment=assignment, score=score, category=category, comment=comment,
                    unable_reason="Images incomplete." if score == "unable" else "",
                    learning_case=learning_case, submitted_at=now)
    db.session.add(review)
    db.session.flush()
    return review


# --- Peer-review reports -------------------------------------------------------

def make_opinion_record(study, requester: User, consultant: User | None, *,
                        priority: str = "routine", minutes: int | None = 60,
                        requested_at=None, status: str | None = None):
    """Record a second-opinion request directly (signed after `minutes` unless None)."""
    from qaportal.models import OpinionRequest, utcnow
    from qaportal.opinions.sla import due_time

    # By default the request lies far enough back that its signature is in the past (a
    # signature in the future would fall outside a period ending today after midday).
    requested = requested_at or utcnow() - timedelta(days=2, minutes=minutes or 0)
    signed = requested + timedelta(minutes=minutes) if minutes is not None else None
    req = OpinionRequest(
        study_id=study.id, requester_id=requester.id, clinical_question="Second look?",
        priority=priority, pool=None if consultant else "neuro",
        named_consultant_id=consultant.id if consultant else None,
        consultant_id=consultant.id if consultant else None,
        status=status or ("signed" if signed else "open"), requested_at=requested,
        due_at=due_time(priority, requested), accepted_at=requested if consultant else None,
        signed_at=signed, turnaround_minutes=minutes,
    )
    db.session.add(req)
    db.session.flush()
    return req
