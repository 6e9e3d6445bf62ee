"""The radiologist's home panel of second opinions: what it counts of their sent requests,
and that it counts them in the database instead of loading them with their studies."""

from __future__ import annotations

import re
from datetime import timedelta

import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import utcnow
from tests.factories import make_opinion_record, make_study, make_user


def _sent(requester, n_signed_newest: int, n_open_newest: int, n_open_oldest: int) -> None:
    """Requests of `requester`: the oldest `n_open_oldest` open, then signed and open ones
    (the open ones newest of all), one day apart."""
    study = make_study(requester)
    now = utcnow()
    statuses = (["open"] * n_open_oldest + ["signed"] * n_signed_newest
                + ["open"] * n_open_newest)
    for days_ago, status in zip(range(len(statuses), 0, -1), statuses, strict=True):
        make_opinion_record(study, requester, None, requested_at=now - timedelta(days=days_ago),
                            minutes=60 if status == "signed" else None, status=status)


def test_panel_counts_the_open_requests_among_the_first_page_sent(client, login_as):
    # the panel's "N of your own requests still open" counts the first 20 of the sent list
    # (latest due first): the 2 oldest open ones lie beyond it
    me = login_as("radiologist")
    _sent(me, n_signed_newest=17, n_open_newest=3, n_open_oldest=2)
    db.session.commit()
    text = re.sub(r"<[^>]+>|\s+", " ", client.get("/").get_data(as_text=True))
    assert "3 of your own requests still open." in text, text[-2000:]


def test_panel_reads_no_study_of_the_requests_sent(app):
    # Sent requests only count on the panel: no statement of it reads their studies
    # (before: the sent list's first page with each study, uploader, read and reader).
    from qaportal.opinions.hooks import _panel

    me = make_user(["radiologist"])
    _sent(me, n_signed_newest=4, n_open_newest=2, n_open_oldest=0)
    db.session.commit()
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    with app.test_request_context("/"):
        sa.event.listen(db.engine, "before_cursor_execute", seen)
        try:
            ctx = _panel(me)
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", seen)
    assert ctx["waiting"] == 2 and ctx["total"] == 0
    assert statements and not [s for s in statements if "studies" in s], statements
