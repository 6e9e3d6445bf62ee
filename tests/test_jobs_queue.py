"""The job queue: huey built from the settings, and the real `qaportal worker` process
running the portal's jobs from SQLite (the default) and from Redis."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from huey import RedisHuey, SqliteHuey

from qaportal import create_app
from qaportal.config import ConfigError
from qaportal.extensions import db
from qaportal.jobs import make_huey, queue
from qaportal.models import AuditEvent, Delivery, OpinionRequest, utcnow
from tests.conftest import make_test_app
from tests.console import console_env
from tests.factories import make_opinion_request, make_study, make_user
from tests.test_feeds_delivery import FILLED, closed_port, make_peer

REDIS_DB = 11  # any database number: the server is the run's own (tests/redis_server.py)


@pytest.fixture(params=["sqlite", "redis"])
def backend(request) -> dict:
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        return {"JOB_QUEUE_URL": f"{server.url}/{REDIS_DB}",
                "JOB_QUEUE_NAME": f"qaportal-test-{uuid.uuid4().hex[:12]}"}
    return {}


@pytest.fixture
def app(tmp_path, db_url, backend):
    app = make_test_app(tmp_path, db_url, DELIVERY_RETRY_BASE_SECONDS=60, **backend)
    with app.app_context():
        yield app
        queue(app).huey.flush()  # a Redis queue of this test's name leaves nothing behind
        db.session.remove()
        db.engine.dispose()


def test_the_queue_follows_the_settings(tmp_path):
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "INSTANCE_PATH": str(tmp_path)})
    huey = make_huey(app.config, app.instance_path)
    assert isinstance(huey, SqliteHuey) and huey.name == "qaportal"
    assert huey.storage.filename == str(tmp_path / "jobs.sqlite")
    # Built, not connected: no traffic goes to this address.
    redis_cfg = {**app.config, "JOB_QUEUE_URL": "redis://127.0.0.1:6379/3",
                 "JOB_QUEUE_NAME": "site-a"}
    huey = make_huey(redis_cfg, app.instance_path)
    assert isinstance(huey, RedisHuey) and huey.name == "site-a"
    assert huey.storage.conn.connection_pool.connection_kwargs["db"] == 3
    with pytest.raises(ConfigError, match="JOB_QUEUE_URL"):
        create_app({"SECRET_KEY": "x", "INSTANCE_PATH": str(tmp_path),
                    "JOB_QUEUE_URL": "amqp://127.0.0.1"})
    with pytest.raises(ConfigError, match="DELIVERY_MAX_ATTEMPTS"):
        create_app({"SECRET_KEY": "x", "INSTANCE_PATH": str(tmp_path),
                    "DELIVERY_MAX_ATTEMPTS": 0})


def test_the_sla_check_and_the_sweep_run_every_minute(tmp_path):
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "INSTANCE_PATH": str(tmp_path)})
    huey = queue(app).huey
    for minute in (0, 1, 37):
        due = {t.name for t in huey.read_periodic(datetime(2026, 1, 5, 9, minute, tzinfo=UTC))}
        assert due == {"qaportal.sla_check", "qaportal.sweep_deliveries",
                       "qaportal.sweep_exports", "qaportal.sweep_review_access"}


def start_worker(app, *args: str) -> tuple[subprocess.Popen, object]:
    """Run `qaportal worker ARGS` on the test app's database, instance and queue settings."""
    env = console_env(Path(app.instance_path),
                      QAPORTAL_DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
                      QAPORTAL_SECRET_KEY=app.config["SECRET_KEY"], QAPORTAL_LOCAL="1")
    for key in ("JOB_QUEUE_URL", "JOB_QUEUE_NAME", "DELIVERY_MAX_ATTEMPTS",
                "DELIVERY_RETRY_BASE_SECONDS"):
        env[f"QAPORTAL_{key}"] = str(app.config[key] or "")
    # Append mode: the worker and this process share the file's offset, and the test's
    # seek(0) before each read must not make the worker write over the first lines.
    path = Path(app.instance_path) / "worker.log"
    path.unlink(missing_ok=True)
    log = open(path, "a+")  # noqa: SIM115 - closed by the test
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from qaportal.cli import main; "
         "sys.argv[0] = 'qaportal'; main()", "worker", *args],
        env=env, cwd=app.instance_path, stdout=log, stderr=subprocess.STDOUT)
    return proc, log


def wait_for(condition, proc, log, seconds: float = 15) -> float:
    """Poll the database until condition() holds; return the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        db.session.rollback()
        db.session.expire_all()
        if condition():
            return time.monotonic() - start
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"the worker exited ({proc.returncode}): {log.read()}")
        time.sleep(0.05)
    log.seek(0)
    pytest.fail(f"not done in {seconds} s; worker log: {log.read()}")


def wait_until_up(proc, log) -> None:
    """Wait for the worker's first line (it has queued a sweep and is consuming)."""
    wait_for(lambda: log.seek(0) or "qaportal worker: " in log.read(), proc, log, 30)


def test_the_worker_runs_queued_jobs_and_stops_cleanly(app, backend):
    a = make_user(licenses=["CA"])
    b = make_user(subspecialties=["neuro"], licenses=["CA"])
    from qaportal.opinions import service, signing
    from tests.factories import DEFAULT_PASSWORD, make_certification

    make_certification(b)
    overdue = make_opinion_request(make_study(a), a, priority="stat")
    overdue.due_at = utcnow() - timedelta(minutes=5)
    signed = make_opinion_request(make_study(a), a)
    service.claim(signed, b)
    make_peer(a, "SITEPACS", port=closed_port())
    db.session.commit()
    proc, log = start_worker(app, "--workers", "2")
    try:
        wait_until_up(proc, log)
        # Jobs queued by this process (as a web process would) are run by the worker.
        queue(app).enqueue("sla_check")
        wait_for(lambda: db.session.get(OpinionRequest, overdue.id).breached_at, proc, log)
        signing.save_draft(signed, b, FILLED)
        signing.sign(signed, b, DEFAULT_PASSWORD)
        db.session.commit()  # the delivery's job is queued now
        wait_for(lambda: db.session.scalar(sa.select(Delivery.last_error)), proc, log)
        (row,) = db.session.scalars(sa.select(Delivery)).all()
        # This study has no stored images to build the objects from: failed at once, with
        # the reason (tests/test_feeds_delivery.py sends real ones).
        assert (row.status, row.attempts) == ("failed", 1)
        assert "cannot be built" in row.last_error
        assert db.session.scalar(sa.select(AuditEvent.actor_label).where(
            AuditEvent.action == "delivery.attempt")) == "worker"
        # SIGTERM (a service manager) and SIGINT (Ctrl-C) both stop it gracefully.
        sig = signal.SIGINT if backend else signal.SIGTERM
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0
        log.seek(0)
        text = log.read()
        assert "Shutting down gracefully" in text and "Consumer exiting" in text
        assert "Traceback" not in text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_the_worker_says_when_its_queue_cannot_be_reached(tmp_path):
    from tests.console import qaportal
    from tests.test_feeds_delivery import closed_port

    instance = tmp_path / "instance"
    instance.mkdir()
    env = console_env(instance, QAPORTAL_JOB_QUEUE_URL=f"redis://127.0.0.1:{closed_port()}/0")
    done = qaportal(env, "worker")
    assert done.returncode == 3
    assert done.stderr.startswith("error: the job queue on Redis redis://127.0.0.1:")
    assert "cannot be reached" in done.stderr and "Traceback" not in done.stderr
