"""The every-minute jobs are queued once per minute however many workers run a scheduler
(qaportal.jobs.periodic): two app servers each with a `qaportal worker` on one queue."""

from __future__ import annotations

import threading
import uuid

import pytest
from huey.consumer import ForkSafeFlag

from qaportal import create_app
from qaportal.jobs import PERIODIC, JobQueue
from qaportal.jobs.periodic import OncePerMinuteScheduler, claim_minute, minute_key


@pytest.fixture(params=["sqlite", "redis"])
def queue_url(request, tmp_path):
    """Where every server's queue lives: one SQLite file, or one Redis."""
    if request.param == "redis":  # the test run's own (tests/redis_server.py)
        return f"{request.getfixturevalue('redis_server').url}/12"
    return f"sqlite:///{tmp_path / 'jobs.sqlite'}"


def _queue(tmp_path, name: str, url: str, queue_name: str) -> JobQueue:
    """The job queue of one server's app (its own instance folder, the shared queue)."""
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "INSTANCE_PATH": str(tmp_path / name),
                      "JOB_QUEUE_URL": url, "JOB_QUEUE_NAME": queue_name})
    return JobQueue(app)


def _two(tmp_path, url: str) -> list[JobQueue]:
    name = f"qaportal-test-{uuid.uuid4().hex[:12]}"
    return [_queue(tmp_path, "a", url, name), _queue(tmp_path, "b", url, name)]


def test_one_claim_per_minute_and_old_claims_are_deleted(tmp_path, queue_url):
    a, b = (q.huey for q in _two(tmp_path, queue_url))
    t = 1_800_000_000.0  # a minute boundary: 30_000_000 * 60
    assert claim_minute(a, t + 5)
    assert not claim_minute(b, t + 50)  # the same minute, from the other server
    assert not claim_minute(a, t + 59.9)
    assert claim_minute(b, t + 60)
    for m in range(2, 10):
        assert claim_minute(a, t + 60 * m)
    minute = int(t // 60)
    held = [m for m in range(minute, minute + 10) if a.storage.has_data_for_key(minute_key(m))]
    assert held == list(range(minute + 7, minute + 10))  # the last ones only


def test_two_schedulers_queue_the_periodic_jobs_once(tmp_path, queue_url):
    queues = _two(tmp_path, queue_url)
    huey = queues[0].huey
    huey.flush()
    schedulers = [OncePerMinuteScheduler(q.huey, ForkSafeFlag(), 1, True) for q in queues]
    barrier = threading.Barrier(len(schedulers))

    def tick(s):
        barrier.wait()
        s.enqueue_periodic_tasks(None)

    threads = [threading.Thread(target=tick, args=(s,)) for s in schedulers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    queued = sorted(task.name for task in huey.pending())
    assert queued == sorted(f"qaportal.{name}" for name in PERIODIC)
