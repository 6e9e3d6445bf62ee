"""Overlapping sla-check runs (cron every minute, a slow run): no error, every notice once.

Run A sends its notices but has not committed when run B starts: B does not see them, tries
the same notices, waits for A's transaction and then skips them. SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from qaportal.extensions import db
from qaportal.models import AuditEvent, Notification, OpinionRequest
from qaportal.opinions import service
from qaportal.opinions.escalation import check_deadlines
from tests.factories import make_opinion_request, make_study, make_user


def _age(req: OpinionRequest, hours: float) -> None:
    req.requested_at -= timedelta(hours=hours)
    req.due_at -= timedelta(hours=hours)


def _world(breach: bool = True):
    """Open an approaching pool request and (with breach) an overdue claimed STAT request."""
    a = make_user(licenses=["CA"])
    b = make_user(subspecialties=["neuro"], licenses=["CA"])
    make_user(subspecialties=["neuro"], licenses=["CA"])
    make_user(roles=("qa_manager",))
    approaching = make_opinion_request(make_study(a), a, priority="routine")  # pool: b, c
    _age(approaching, 40)
    overdue = None
    if breach:
        overdue = make_opinion_request(make_study(a), a, priority="stat")
        service.claim(overdue, b)
        _age(overdue, 2)
    db.session.commit()
    db.session.query(Notification).delete()
    db.session.commit()
    return approaching, overdue


def _run_a(app, sent, release, results, errors):
    with app.app_context():
        try:
            summary = check_deadlines()
            sent.set()
            release.wait(timeout=10)
            db.session.commit()
            results["a"] = summary
        except Exception as exc:  # noqa: BLE001 - reported to the main thread
            db.session.rollback()
            errors.append(("a", repr(exc)))
            sent.set()
        finally:
            db.session.remove()


def _run_b(app, sent, results, errors):
    with app.app_context():
        try:
            sent.wait(timeout=10)
            summary = check_deadlines()
            db.session.commit()
            results["b"] = summary
        except Exception as exc:  # noqa: BLE001 - reported to the main thread
            db.session.rollback()
            errors.append(("b", repr(exc)))
        finally:
            db.session.remove()


@pytest.mark.parametrize("breach", [False, True], ids=["warnings-only", "with-breach"])
def test_overlapping_runs_send_each_notice_once_without_error(app, breach):
    approaching, overdue = _world(breach)
    sent, release = threading.Event(), threading.Event()
    results: dict = {}
    errors: list = []
    ta = threading.Thread(target=_run_a, args=(app, sent, release, results, errors))
    tb = threading.Thread(target=_run_b, args=(app, sent, results, errors))
    ta.start()
    tb.start()
    assert sent.wait(timeout=10)
    time.sleep(0.5)  # B is now running against A's uncommitted notices
    release.set()
    ta.join(timeout=30)
    tb.join(timeout=30)
    assert not errors, errors
    # Two pool members warned, and requester, consultant and QA manager told of the breach.
    expected = 5 if breach else 2
    assert results["a"].notices == expected
    assert results["b"].notices == 0
    db.session.expire_all()
    keys = db.session.scalars(sa.select(Notification.dedupe_key)).all()
    assert len(keys) == len(set(keys)) == expected
    breaches = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "opinion.sla_breached"))
    assert breaches == (1 if breach else 0)
    if breach:
        assert db.session.get(OpinionRequest, overdue.id).breached_at is not None
    # And a third run, later, finds nothing left to send.
    assert check_deadlines().notices == 0


def test_many_simultaneous_runs(app):
    _world()
    barrier = threading.Barrier(3)
    errors: list = []
    totals: list = []

    def run():
        with app.app_context():
            try:
                barrier.wait(timeout=10)
                totals.append(check_deadlines().notices)
                db.session.commit()
            except Exception as exc:  # noqa: BLE001 - reported to the main thread
                db.session.rollback()
                errors.append(repr(exc))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    assert sum(totals) == 5
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification)) == 5
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "opinion.sla_breached")) == 1
