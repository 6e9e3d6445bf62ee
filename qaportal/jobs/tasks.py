"""What the jobs do; each runs in the worker inside the app context (qaportal.jobs)."""

from __future__ import annotations

from flask import current_app

from qaportal.extensions import db


def deliver(delivery_id: int) -> None:
    """Make one attempt at sending a signed result to its destination."""
    from qaportal.feeds.delivery import attempt

    attempt(delivery_id)


def sweep_deliveries() -> None:
    """Queue the deliveries that are due, and take back those of an attempt that died."""
    from qaportal.feeds.delivery import sweep

    sweep()


def sla_check() -> None:
    """Warn of approaching second-opinion deadlines and escalate breaches."""
    from qaportal.opinions.escalation import check_deadlines

    summary = check_deadlines()
    db.session.commit()
    current_app.logger.info(summary.line())
