"""The job queue: work that should not run inside a web request (huey).

Each app builds one huey instance from its settings: SqliteHuey in the instance folder by
default (instance/jobs.sqlite, for one machine), RedisHuey when QAPORTAL_JOB_QUEUE_URL is a
redis:// URL (workers on several machines). The web processes only put jobs in; `qaportal
worker` (qaportal.jobs.worker) takes them out and runs them inside the app context.

Jobs that follow a database change are queued only once the transaction commits
(`enqueue_after_commit`), so a worker never looks for a row that is not there yet and a
rolled-back action queues nothing; a job lost on the way (the queue down at that moment)
is picked up by the periodic sweep of the table it works from.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app, has_app_context
from huey import RedisHuey, SqliteHuey, crontab
from huey.api import Huey

from qaportal.jobs import tasks

EXTENSION_KEY = "qaportal_jobs"
PENDING_KEY = "qaportal_pending_jobs"

# The jobs: a name known to every process, and the function that does the work.
TASKS: dict[str, Callable[..., None]] = {
    "deliver": tasks.deliver,
    "export": tasks.export,
    "warm_metadata": tasks.warm_metadata,
}
# Periodic jobs, run by the worker's scheduler every minute (and queueable by name too).
PERIODIC: dict[str, Callable[..., None]] = {
    "sla_check": tasks.sla_check,
    "sweep_deliveries": tasks.sweep_deliveries,
    "sweep_exports": tasks.sweep_exports,
    "sweep_review_access": tasks.sweep_review_access,
}


def make_huey(config, instance_path: str) -> Huey:
    """Return a huey instance for the settings: Redis when configured, else SQLite."""
    url = config.get("JOB_QUEUE_URL")
    name = config["JOB_QUEUE_NAME"]
    if url and not url.startswith("sqlite:///"):
        return RedisHuey(name, url=url, results=False)
    filename = url[len("sqlite:///"):] if url else os.path.join(instance_path, "jobs.sqlite")
    return SqliteHuey(name, filename=filename, results=False)


def describe_backend(config) -> str:
    """Where the queue lives, for logs and the worker's first line (no password)."""
    url = config.get("JOB_QUEUE_URL")
    if url and not url.startswith("sqlite:///"):
        return f"Redis {sa.make_url(url).render_as_string(hide_password=True)}"
    return f"SQLite {url[len('sqlite:///'):] if url else 'instance/jobs.sqlite'}"


class JobQueue:
    """The app's huey instance with the portal's jobs registered on it."""

    def __init__(self, app: Flask):
        self.app = app
        self.huey = make_huey(app.config, app.instance_path)
        self.tasks: dict[str, Any] = {}
        for name, func in TASKS.items():
            self.tasks[name] = self.huey.task(name=f"qaportal.{name}")(self._in_app(func))
        for name, func in PERIODIC.items():
            self.tasks[name] = self.huey.periodic_task(
                crontab(), name=f"qaportal.{name}")(self._in_app(func))

    def _in_app(self, func: Callable[..., None]) -> Callable[..., None]:
        """Run a job inside this app's context, with a database session of its own."""
        app = self.app

        @functools.wraps(func)
        def run(*args, **kwargs):
            with app.app_context():  # its teardown removes the job's session
                func(*args, **kwargs)

        return run

    def enqueue(self, name: str, *args: Any, delay: float | None = None) -> None:
        """Queue a job now, or to start `delay` seconds from now."""
        task = self.tasks[name]
        if delay is not None and delay > 0:
            task.schedule(args=args, delay=delay)
        else:
            task(*args)


def queue(app: Flask | None = None) -> JobQueue:
    """Return the app's job queue, built on first use."""
    app = app or current_app._get_current_object()
    jobs = app.extensions.get(EXTENSION_KEY)
    if jobs is None:
        jobs = app.extensions[EXTENSION_KEY] = JobQueue(app)
    return jobs


def enqueue_after_commit(session, name: str, *args: Any) -> None:
    """Queue a job once the session's transaction commits (none if it rolls back)."""
    session.info.setdefault(PENDING_KEY, []).append((name, args))


def enqueue_now(name: str, *args: Any) -> None:
    """Queue a job whose rows are committed already; a queue that cannot be reached only
    logs a warning (the change stands; each job's periodic sweep, or the first request
    that needs the work, picks it up)."""
    try:
        queue().enqueue(name, *args)
    except Exception as exc:  # noqa: BLE001 - the change is saved whatever the queue does
        current_app.logger.warning("job %s not queued (%s: %s); the periodic sweep "
                                   "will queue it", name, type(exc).__name__, exc)


@sa.event.listens_for(sa.orm.Session, "after_commit")
def _enqueue_pending(session) -> None:
    pending = session.info.pop(PENDING_KEY, None)
    if not pending or not has_app_context():
        return
    for name, args in pending:
        enqueue_now(name, *args)


@sa.event.listens_for(sa.orm.Session, "after_rollback")
def _drop_pending(session) -> None:
    session.info.pop(PENDING_KEY, None)
