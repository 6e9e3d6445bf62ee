"""`qaportal worker`: run the job queue's consumer (huey) for this portal."""

from __future__ import annotations

import logging
import signal
import sys

import click
from flask import current_app
from flask.cli import with_appcontext
from huey.consumer import Consumer

from qaportal import audit_key
from qaportal.jobs import describe_backend, queue
from qaportal.jobs.periodic import OncePerMinuteScheduler


class PortalConsumer(Consumer):
    """huey's consumer, stopping gracefully on SIGTERM as on SIGINT: the jobs in hand
    finish (up to the shutdown timeout), then the process exits; a second signal stops
    at once (an interrupted delivery is taken back by the sweep when its lease ends).
    Its scheduler queues the every-minute jobs only for a minute no other worker of the
    queue has claimed (qaportal.jobs.periodic)."""

    scheduler_class = OncePerMinuteScheduler

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._signal_actions[signal.SIGTERM] = (False, True)
        self._signal_actions[signal.SIGINT] = (False, True)


@click.command("worker")
@click.option("--workers", "-w", default=2, show_default=True, type=click.IntRange(1, 64),
              help="Jobs run at the same time (threads).")
@click.option("--no-periodic", is_flag=True,
              help="Leave the every-minute jobs (SLA check, delivery sweep) to another worker.")
@click.option("--shutdown-timeout", default=60.0, show_default=True,
              type=click.FloatRange(0, 3600),
              help="Seconds a stop waits for the jobs in hand.")
@with_appcontext
def worker(workers: int, no_periodic: bool, shutdown_timeout: float) -> None:
    """Run the job queue: deliveries of signed results, the SLA check every minute."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s "
                        "%(message)s")
    app = current_app._get_current_object()
    try:  # a worker signs audit entries too: the key must be the chain's (audit_key.py)
        audit_key.check(app)
    except audit_key.AuditKeyMismatch as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(3)
    jobs = queue(app)
    consumer = PortalConsumer(
        jobs.huey, workers=workers, worker_type="thread", periodic=not no_periodic,
        # Poll an empty queue at most every half second: a job starts well within 1 s.
        initial_delay=0.1, backoff=1.15, max_delay=0.5, scheduler_interval=1,
        shutdown_timeout=shutdown_timeout or None)
    # Anything queued in the database while no worker ran (or whose job was lost).
    try:
        jobs.enqueue("sweep_deliveries")
    except Exception as exc:  # noqa: BLE001 - Redis down, a queue file not writable
        click.echo(f"error: the job queue on {describe_backend(app.config)} cannot be "
                   f"reached: {type(exc).__name__}: {exc}", err=True)
        sys.exit(3)
    click.echo(f"qaportal worker: {workers} thread(s), queue {app.config['JOB_QUEUE_NAME']!r} "
               f"on {describe_backend(app.config)}", err=True)
    consumer.run()
