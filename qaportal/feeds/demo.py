"""Demo data of the hospital feeds: a known peer on this machine and reader identifiers, so
`storescu` and an HL7 sender on 127.0.0.1 can feed the demo portal at once (docs/demo.md)."""

from __future__ import annotations

import sqlalchemy as sa

from qaportal.demo.steps import demo_step
from qaportal.extensions import db
from qaportal.feeds.reader_ids import set_reader_id
from qaportal.models import DicomPeer

DEMO_PEER_AE = "DEMO_PACS"
# The identifiers a demo RIS uses for the demo radiologists (local ids, not real NPIs).
DEMO_READER_IDS = {"radiologist": "DEMO-RAD-1", "radiologist2": "DEMO-RAD-2",
                   "reviewer": "DEMO-RAD-3"}


@demo_step(50)
def seed_feeds(accounts: dict) -> str | None:
    """Add the demo peer (this machine, owned by the first demo radiologist, no result
    destination) and the demo radiologists' reader identifiers, where missing."""
    added = []
    if db.session.scalar(sa.select(DicomPeer.id).where(DicomPeer.ae_title == DEMO_PEER_AE)) \
            is None:
        db.session.add(DicomPeer(
            ae_title=DEMO_PEER_AE, addresses=["127.0.0.1", "::1"],
            owner_id=accounts["radiologist"].id, active=True, send_kind="none",
            description="Demo: a PACS or modality on this machine"))
        added.append(f"peer {DEMO_PEER_AE}")
    for key, reader_id in DEMO_READER_IDS.items():
        user = accounts[key]
        if user.reader_id is None:
            set_reader_id(user, reader_id, by=None, actor_label="demo")
            added.append(reader_id)
    db.session.flush()
    return f"feeds: {', '.join(added)}" if added else None
