"""What the jobs do; each runs in the worker inside the app context (qaportal.jobs)."""

from __future__ import annotations

from flask import current_app

from qaportal.extensions import db


def deliver(delivery_id: int) -> None:
    """Make one attempt at sending a signed result to its destination."""
    from qaportal.feeds.delivery import attempt

    attempt(delivery_id)


def export(job_id: int) -> None:
    """Make a long export (an audit CSV, a report over a long period)."""
    from qaportal.exports.service import run

    run(job_id)


def warm_metadata(study_id: int, user_id: int) -> None:
    """Compute a study's DICOMweb headers as that user is served them (new instances
    stored, a study granted)."""
    from qaportal.dicomweb.served import warm_served

    warm_served(study_id, user_id)


def sweep_exports() -> None:
    """Queue again the exports still waiting; fail those a dead worker left running."""
    from qaportal.exports.service import sweep

    sweep()


def sweep_deliveries() -> None:
    """Queue the deliveries that are due, and take back those of an attempt that died."""
    from qaportal.feeds.delivery import sweep

    sweep()


def sweep_review_access() -> None:
    """End the study access of reviews submitted long enough ago, or cancelled."""
    from qaportal.reviews.access import sweep

    ended = sweep()
    db.session.commit()
    if ended:
        current_app.logger.info("review access ended: %d grant(s)", ended)


def sla_check() -> None:
    """Warn of approaching second-opinion deadlines and escalate breaches."""
    from qaportal.opinions.escalation import check_deadlines

    summary = check_deadlines()
    db.session.commit()
    current_app.logger.info(summary.line())
