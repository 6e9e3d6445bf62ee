"""The every-minute jobs run once per minute for the whole portal, however many workers.

Every `qaportal worker` runs huey's scheduler, and each scheduler would queue the periodic
jobs (SLA check, sweeps) once a minute: with a worker on each of two app servers sharing one
Redis queue, every job would run twice a minute. Before queueing them, a scheduler claims the
wall-clock minute in the queue's own storage (an atomic set-if-empty, shared by every worker
of the queue); only the one that claims it queues the jobs. A worker that stops leaves the
next minute to the others, so no worker has to be the designated one. The jobs stay
idempotent all the same (tests/test_opinions_sla_overlap.py): two workers whose clocks
disagree may each claim a minute of their own.
"""

from __future__ import annotations

import time

from huey.api import Huey
from huey.consumer import Scheduler

KEY_PREFIX = "qaportal.periodic-minute:"
# Each winner deletes the claims of the SWEEP_MINUTES minutes before the last KEEP_MINUTES
# (a minute missed while no worker ran leaves one small key behind).
KEEP_MINUTES = 2
SWEEP_MINUTES = 5


def minute_key(minute: int) -> bytes:
    """Return the storage key of one claimed minute (minutes since the epoch)."""
    return f"{KEY_PREFIX}{minute}".encode()


def claim_minute(huey: Huey, now: float | None = None) -> bool:
    """Claim the current wall-clock minute for the periodic jobs; True for one caller only."""
    minute = int((time.time() if now is None else now) // 60)
    if not huey.storage.put_if_empty(minute_key(minute), b"1"):
        return False
    for old in range(minute - KEEP_MINUTES - SWEEP_MINUTES, minute - KEEP_MINUTES):
        huey.storage.delete_data(minute_key(old))
    return True


class OncePerMinuteScheduler(Scheduler):
    """huey's scheduler, queueing the periodic jobs only for a minute it claimed."""

    def enqueue_periodic_tasks(self, now):
        try:
            claimed = claim_minute(self.huey)
        except Exception:  # the queue unreachable: enqueueing would fail the same way
            self._logger.exception("Error claiming the minute for the periodic jobs.")
            return
        if claimed:
            super().enqueue_periodic_tasks(now)
        else:
            self._logger.debug("Periodic jobs of this minute already queued by another worker.")
