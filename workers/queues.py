"""Names flashsale's jobs share in the queue's Redis."""

from __future__ import annotations

from typing import Any

from rq import Queue

QUEUE_NAME = "flashsale"
DRAIN_REQUESTED_KEY = "flashsale:drain:requested"
"""Set (NX, with a TTL) while a requested drain waits in the queue; the drain clears it when it starts."""

DELIVERY_QUEUE_NAME = "flashsale-deliveries"
"""The merchant's events go out from their own queue, worked by their own process: never behind a drain."""
DELIVERY_REQUESTED_KEY = "flashsale:deliveries:requested"
"""Set (NX, with a TTL) while a requested delivery round waits in its queue; the round clears it when it starts."""

DRAIN_JOB = "workers.jobs.drain"
DELIVER_JOB = "workers.jobs.deliver"
REAP_JOB = "workers.jobs.reap"
JOB_TIMEOUT_SECONDS = 300


def queue(connection: Any) -> Queue:
    return Queue(QUEUE_NAME, connection=connection)


def delivery_queue(connection: Any) -> Queue:
    return Queue(DELIVERY_QUEUE_NAME, connection=connection)
