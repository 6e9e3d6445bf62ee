"""Demo data: second-opinion requests in every state, some overdue (demo step 20)."""

from __future__ import annotations

import secrets
import uuid
from datetime import date, timedelta

import sqlalchemy as sa

from qaportal.demo import demo_step
from qaportal.extensions import db
from qaportal.models import OpinionRequest, OriginalRead, Series, Study, User, utcnow
from qaportal.opinions import service, signing
from qaportal.opinions.sla import target_hours

SAMPLES = [
    ("CT", "CT HEAD W/O CONTRAST", "Subtle hypodensity left insula: early infarct?"),
    ("MR", "MR BRAIN W/WO CONTRAST", "Enhancing lesion right frontal lobe: tumour or abscess?"),
    ("CT", "CT CHEST W/ CONTRAST", "Ground-glass nodule 7 mm right upper lobe: follow-up?"),
    ("MR", "MR KNEE LEFT", "Medial meniscus tear? Do arthroscopy criteria apply?"),
    ("CR", "XR CHEST PA/LAT", "Widened mediastinum on a supine film?"),
    ("CT", "CT ABDOMEN PELVIS W/ CONTRAST", "Appendix not seen; appendicitis excluded?"),
    ("MR", "MR LUMBAR SPINE", "Disc extrusion L4-5 with nerve root compression?"),
    ("CT", "CT ANGIO CHEST", "Subsegmental filling defect: pulmonary embolism?"),
]


def _demo_study(owner: User, index: int) -> Study:
    """Create a metadata-only study (no images) with a finalized original read."""
    modality, description, question = SAMPLES[index % len(SAMPLES)]
    study = Study(
        study_uid=f"2.25.{uuid.uuid4().int}", owner_id=owner.id,
        patient_name=f"DEMO^PATIENT{index + 1}", patient_id=f"DEMO{index + 1:04d}",
        patient_sex="F" if index % 2 else "M", accession_number=f"DEMOACC{index + 1:05d}",
        study_date=date.today() - timedelta(days=2 + index), study_description=description,
        modalities=modality, jurisdiction="CA", deid_key=secrets.token_hex(32),
        clinical_question=question,
        deid_date_shift_days=-(10 + index), pseudonym=f"QA-{secrets.token_hex(4).upper()}",
        series_count=1,
    )
    study.series.append(Series(series_uid=f"2.25.{uuid.uuid4().int}", modality=modality,
                               series_number=1, series_description="AXIAL"))
    db.session.add(study)
    db.session.flush()
    db.session.add(OriginalRead(study_id=study.id, reader_id=owner.id,
                                report_text="Preliminary: findings as in the clinical question.",
                                finalized_at=utcnow(), entered_by_id=owner.id))
    db.session.flush()
    return study


def _studies(owner: User, count: int, offset: int) -> list[Study]:
    """Use the owner's studies in a jurisdiction the demo licences cover; add what is missing."""
    found = list(db.session.scalars(
        sa.select(Study).where(Study.owner_id == owner.id, Study.jurisdiction == "CA")
        .order_by(Study.id).limit(count)
    ))
    while len(found) < count:
        found.append(_demo_study(owner, offset + len(found)))
    return found


def _age(req: OpinionRequest, hours_ago: float) -> None:
    """Move a request's clock back as if it had been made hours_ago."""
    req.requested_at = utcnow() - timedelta(hours=hours_ago)
    req.due_at = req.requested_at + timedelta(hours=target_hours(req.priority))


@demo_step(20)
def seed_opinions(accounts: dict) -> str:
    """Create second-opinion requests in every state (once)."""
    from qaportal.demo.accounts import demo_password

    rad, rad2, rev = accounts["radiologist"], accounts["radiologist2"], accounts["reviewer"]
    existing = db.session.scalar(sa.select(sa.func.count()).select_from(OpinionRequest).where(
        OpinionRequest.requester_id.in_((rad.id, rad2.id))))
    if existing:
        return f"Second opinions: {existing} demo requests already present"
    password = demo_password()
    mine = _studies(rad, 6, 0)
    theirs = _studies(rad2, 2, 6)

    def ask(study, requester, priority, hours_ago, **kw):
        question = study.clinical_question or "Second opinion on the original read, please."
        req = service.create_request(
            study, requester, priority=priority, question=kw.pop("question", question),
            history="Demo case. Symptoms for two days.",
            preliminary=study.read.report_text if study.read else "", **kw)
        _age(req, hours_ago)
        return req

    ask(mine[0], rad, "stat", 1.5, pool="neuro")                       # open, overdue
    ask(mine[1], rad, "urgent", 3.5, colleague=rad2)                   # open, approaching
    working = ask(mine[2], rad, "routine", 6, pool="msk", deidentified=True)
    service.claim(working, rev)
    signing.save_draft(working, rev, {"findings": "Draft findings...", "agreement": "minor"})
    declined = ask(mine[3], rad, "routine", 10, colleague=rev, request_type="coverage_review",
                   criteria="Does imaging show a meniscal tear meeting arthroscopy criteria?")
    service.accept(declined, rev)
    service.decline(declined, rev, "Outside my practice this week; please ask the MSK pool.")
    signed = ask(mine[4], rad, "urgent", 3, pool="neuro")
    service.claim(signed, rad2)
    service.post_message(signed, rad2, "Was contrast given for the prior study?")
    service.post_message(signed, rad, "Yes, the prior was contrast-enhanced.")
    signing.save_draft(signed, rad2, {
        "findings": "No mediastinal widening on the upright view.",
        "impression": "Normal mediastinum.", "agreement": "agree",
        "recommendations": "No further imaging."})
    signing.sign(signed, rad2, password)
    signing.add_addendum(signed, rad2, "Compared with outside films: unchanged.", password)
    cancelled = ask(mine[5], rad, "routine", 20, pool="chest")
    service.cancel(cancelled, rad, "Answered at the tumour board.")
    ask(theirs[0], rad2, "routine", 2, pool="chest")                   # pool work for rad
    stat = ask(theirs[1], rad2, "stat", 1.2, colleague=rad)            # rad's overdue STAT
    service.accept(stat, rad)
    db.session.flush()
    return ("Second opinions: 8 requests (open, overdue, approaching, accepted, declined, "
            "signed with addendum, cancelled)")
