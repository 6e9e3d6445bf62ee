"""The demo step seeds requests in every state, once."""

from __future__ import annotations

import sqlalchemy as sa

from qaportal.demo import seed
from qaportal.extensions import db
from qaportal.models import OpinionRequest
from qaportal.opinions.sla import sla_state


def test_demo_seeds_every_state_idempotently(app, client, auth):
    accounts, password, summaries = seed()
    assert any(s.startswith("Second opinions: 8 requests") for s in summaries)
    reqs = db.session.scalars(sa.select(OpinionRequest)).all()
    statuses = {r.status for r in reqs}
    assert statuses == {"open", "accepted", "declined", "signed", "cancelled"}
    states = {sla_state(r) for r in reqs}
    assert {"overdue", "approaching", "ok", "done"} <= states
    signed = next(r for r in reqs if r.status == "signed")
    assert signed.opinion.addenda and signed.turnaround_minutes is not None
    seed()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OpinionRequest)) == 8
    # The demo radiologist's worklist is live: their STAT request and the chest pool work.
    auth.login(accounts["radiologist"], password)
    page = client.get("/opinions/").get_data(as_text=True)
    mine = page.split('id="my-worklist"')[1].split('id="sent"')[0]
    assert mine.count("data-request-id=") == 2 and "sla-overdue" in mine
