"""Ask for a drain after a write, so that a burst of writes enqueues about one drain job.

Two filters, cheapest first:
- in process, at most one Redis round trip per ``debounce`` seconds; a request inside the window is
  not dropped but fired when the window ends (a timer), so the last write of a burst is always drained;
- across processes, ``SET NX`` on a flag that the drain job clears when it starts: while one requested
  drain waits in the queue, more requests add nothing (that job will see their events).
A lost request costs latency only: the scheduler's periodic drain picks the events up.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from shared.logs import get_logger
from workers.queues import (
    DELIVER_JOB,
    DELIVERY_REQUESTED_KEY,
    DRAIN_JOB,
    DRAIN_REQUESTED_KEY,
    JOB_TIMEOUT_SECONDS,
    delivery_queue,
    queue,
)

DEFAULT_DEBOUNCE_SECONDS = 0.1
FLAG_TTL_MS = 30_000
"""A flag whose job was lost (a crash between SET and enqueue) stops blocking new drains after this."""


log = get_logger("flashsale.workers.trigger")


class DrainTrigger:
    def __init__(self, queue_redis: Any, *, debounce: float = DEFAULT_DEBOUNCE_SECONDS) -> None:
        self.queue_redis = queue_redis
        self.debounce = debounce
        self._lock = threading.Lock()
        self._last = float("-inf")
        self._timer: threading.Timer | None = None

    def request(self) -> bool:
        """Make sure a drain runs after this call; True if this call enqueued one."""
        with self._lock:
            if self._timer is not None:
                return False
            wait = self._last + self.debounce - time.monotonic()
            if wait > 0:
                self._timer = threading.Timer(wait, self._fire_later)
                self._timer.daemon = True
                self._timer.start()
                return False
            self._last = time.monotonic()
        return self.enqueue()

    def _fire_later(self) -> None:
        with self._lock:
            self._timer = None
            self._last = time.monotonic()
        try:
            self.enqueue()
        except Exception as error:  # a timer thread has no caller to tell; the periodic drain covers it
            log.warning("drain_trigger_failed", error=str(error))

    def enqueue(self) -> bool:
        """Enqueue a drain unless one is already waiting (the Redis flag); no debounce."""
        if not self.queue_redis.set(DRAIN_REQUESTED_KEY, 1, nx=True, px=FLAG_TTL_MS):
            return False
        try:
            queue(self.queue_redis).enqueue(
                DRAIN_JOB,
                job_timeout=JOB_TIMEOUT_SECONDS,
                result_ttl=300,
                failure_ttl=86_400,
                description="drain the outbox (requested)",
            )
        except BaseException:
            self.queue_redis.delete(DRAIN_REQUESTED_KEY)
            raise
        return True

    def close(self) -> None:
        """Fire a request still waiting for its window now, rather than lose it at exit."""
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            self.enqueue()


def clear_request(queue_redis: Any) -> None:
    """Called by a starting drain: from here on, a write needs a new drain to be seen."""
    queue_redis.delete(DRAIN_REQUESTED_KEY)


def request_delivery(queue_redis: Any) -> bool:
    """Enqueue a delivery round of the merchant's events unless one is already waiting; True if enqueued."""
    if not queue_redis.set(DELIVERY_REQUESTED_KEY, 1, nx=True, px=FLAG_TTL_MS):
        return False
    try:
        delivery_queue(queue_redis).enqueue(
            DELIVER_JOB,
            job_timeout=JOB_TIMEOUT_SECONDS,
            result_ttl=300,
            failure_ttl=86_400,
            description="deliver the merchant's events (requested)",
        )
    except BaseException:
        queue_redis.delete(DELIVERY_REQUESTED_KEY)
        raise
    return True


def clear_delivery_request(queue_redis: Any) -> None:
    queue_redis.delete(DELIVERY_REQUESTED_KEY)
