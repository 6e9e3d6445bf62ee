"""Demo data: second-opinion requests in every state, some overdue (demo step 20)."""

from __future__ import annotations

import random
import secrets
from datetime import date, timedelta

import sqlalchemy as sa

from qaportal.demo.steps import demo_step
from qaportal.extensions import db
from qaportal.models import OpinionRequest, OriginalRead, Study, User, utcnow
from qaportal.opinions import service, signing
from qaportal.opinions.sla import target_hours

# Questions a referrer would ask a consultant, by exam kind (qaportal.demo.images): each
# goes to the pool of the exam's subspecialty, or to a colleague of that subspecialty.
QUESTIONS = {
    "ct_head": ("Found confused at home, on warfarin: acute intracranial haemorrhage? "
                "Mass effect?", "Found on the floor at home; on warfarin for atrial fibrillation."),
    "mr_brain": ("Recurrent headaches: is there a structural cause?",
                 "Daily headaches for three months; normal neurological examination."),
    "mr_liver": ("Right hepatic lobe lesion: haemangioma, abscess or tumour?",
                 "Weight loss; indeterminate liver lesion on ultrasound."),
    "mr_shoulder": ("Partial-thickness supraspinatus tear or tendinosis?",
                    "Painful arc for four months despite physiotherapy."),
    "xr_tibia": ("Lucent distal tibial lesion: benign, or does it need further imaging?",
                 "Ankle pain after a twisting injury; no prior films."),
    "ct_chest": ("Apical opacity: scarring or a lesion needing follow-up?",
                 "Former smoker with a persistent cough."),
    "xr_chest": ("Widened mediastinum on the supine film: is the PA view normal?",
                 "Chest pain; supine trauma-bay film reported a wide mediastinum."),
}
# Each request: the exam kinds it may use (first installed wins) and its requester's key.
REQUESTS = {
    "stat_open": (("ct_head",), "radiologist"),
    "colleague_open": (("mr_liver",), "radiologist"),
    "working": (("mr_shoulder", "xr_tibia", "ct_chest"), "radiologist"),
    "declined": (("xr_tibia", "mr_shoulder", "ct_chest"), "radiologist"),
    "signed": (("mr_brain",), "radiologist"),
    "cancelled": (("ct_chest",), "radiologist"),
    "pool_for_rad": (("xr_chest", "ct_chest"), "radiologist2"),
    "stat_for_rad": (("ct_chest",), "radiologist2"),
}
# A request whose question is not the exam kind's usual one (a STAT needs an acute question).
OVERRIDES = {"stat_for_rad": ("Haemoptysis overnight: apical mass or cavity?",
                              "Smoker, coughing blood since last night; on no anticoagulant.")}


def _demo_study(owner: User, index: int, kinds: tuple[str, ...], store,
                keys: list[str]) -> Study:
    """Create a study of the first installed exam kind, with its image and original read."""
    from qaportal.demo import images

    key = next(k for k in kinds if images.available(k))
    names = random.Random(index)  # noqa: S311 (made-up demo names, not a secret)
    study, storage_key = images.add_study(
        owner.id, key, store, patient=(images.patient_name(names), f"DEMO{index + 1:04d}"),
        accession=f"DO{index + 1:08d}", sex="F" if index % 2 else "M",
        when=date.today() - timedelta(days=2 + index), jurisdiction="CA",
        deid_key=secrets.token_hex(32), deid_date_shift_days=-(10 + index),
        pseudonym=f"QA-{secrets.token_hex(4).upper()}",
        clinical_question=QUESTIONS[key][0], clinical_history=QUESTIONS[key][1])
    keys.append(storage_key)
    study.read = OriginalRead(reader_id=owner.id, entered_by_id=owner.id,
                              report_text=images.EXAMS[key].report, finalized_at=utcnow())
    db.session.flush()
    return study


def _kind(study: Study) -> str:
    """Return the exam kind a demo study was made as (by its description)."""
    from qaportal.demo import images

    return next(k for k, e in images.EXAMS.items() if e.description == study.study_description)


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
    from qaportal.demo import images
    from qaportal.studies.storage import image_store

    store, keys = image_store(), []
    studies = {name: _demo_study(accounts[owner], i, kinds, store, keys)
               for i, (name, (kinds, owner)) in enumerate(REQUESTS.items())}
    for name, (question, history) in OVERRIDES.items():
        studies[name].clinical_question, studies[name].clinical_history = question, history
    store.sync(keys)

    def ask(name, requester, priority, hours_ago, **kw):
        study = studies[name]
        if "colleague" not in kw:  # to the pool of the exam's subspecialty
            kw["pool"] = images.EXAMS[_kind(study)].subspecialty
        req = service.create_request(
            study, requester, priority=priority, question=study.clinical_question,
            history=study.clinical_history, preliminary=study.read.report_text, **kw)
        _age(req, hours_ago)
        return req

    ask("stat_open", rad, "stat", 1.5)                                  # open, overdue
    ask("colleague_open", rad, "urgent", 3.5, colleague=rad2)           # open, approaching
    working = ask("working", rad, "routine", 6, deidentified=True)
    service.claim(working, rev)
    signing.save_draft(working, rev, {"findings": "Draft findings...", "agreement": "minor"})
    declined = ask("declined", rad, "routine", 10, colleague=rev,
                   request_type="coverage_review",
                   criteria="Does the imaging meet the payer's criteria for a further MRI?")
    service.accept(declined, rev)
    service.decline(declined, rev, "Outside my practice this week; please ask the MSK pool.")
    signed = ask("signed", rad, "urgent", 3)
    service.claim(signed, rad2)
    service.post_message(signed, rad2, "Was gadolinium given?")
    service.post_message(signed, rad, "No, this is a non-contrast study.")
    signing.save_draft(signed, rad2, {
        "findings": "No intracranial mass, haemorrhage or hydrocephalus. Normal flow voids.",
        "impression": "Normal non-contrast MRI of the brain.", "agreement": "agree",
        "recommendations": "No further imaging."})
    signing.sign(signed, rad2, password)
    signing.add_addendum(signed, rad2, "Compared with the outside MRI: unchanged.", password)
    cancelled = ask("cancelled", rad, "routine", 20)
    service.cancel(cancelled, rad, "Answered at the tumour board.")
    ask("pool_for_rad", rad2, "routine", 2)                             # pool work for rad
    stat = ask("stat_for_rad", rad2, "stat", 1.2, colleague=rad)        # rad's overdue STAT
    service.accept(stat, rad)
    db.session.flush()
    return ("Second opinions: 8 requests (open, overdue, approaching, accepted, declined, "
            "signed with addendum, cancelled)")
