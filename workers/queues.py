"""Names flashsale's jobs share in the queue's Redis."""

from __future__ import annotations

from typing import Any

from rq import Queue

QUEUE_NAME = "flashsale"
DRAIN_REQUESTED_KEY = "flashsale:drain:requested"
"""Set (NX, with a TTL) while a requested drain waits in the queue; the drain clears it when it starts."""

DRAIN_JOB = "workers.jobs.drain"
REAP_JOB = "workers.jobs.reap"
JOB_TIMEOUT_SECONDS = 300


def queue(connection: Any) -> Queue:
    return Queue(QUEUE_NAME, connection=connection)
