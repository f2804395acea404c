"""The long-running processes: ``flashsale worker`` and ``flashsale scheduler``.

Both outlive a failover of the queue's Redis: RQ's worker quits on most errors of its connection, and
rq-scheduler on any; each is started again on the same connection, which (with sentinels) finds the new
primary by itself.
"""

from __future__ import annotations

import contextlib
import time
from types import FrameType

import redis.exceptions
from rq import SimpleWorker

from shared import logs
from shared.settings import Settings
from workers.context import WorkerContext, install, queue_connection
from workers.deliveries import deliver_round
from workers.drain import DEFAULT_BATCH_SIZE, DrainFailed, MerchantOutbox
from workers.drain import drain as drain_outbox
from workers.queues import DELIVERY_QUEUE_NAME, QUEUE_NAME
from workers.schedule import make_scheduler, register

log = logs.get_logger("flashsale.workers")

RECONNECT_SECONDS = 1.0
"""The pause before a worker or scheduler that lost its Redis starts again."""
QUEUE_FAILURES = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.ResponseError)
"""What a failover of the queue's Redis raises: the primary gone, or a replica now (READONLY, UNBLOCKED)."""


class FlashsaleWorker(SimpleWorker):
    """RQ's in-process worker that remembers a stop request (SIGTERM, SIGINT) whenever it came.

    RQ 3 notes one only when it comes mid-job; an idle worker's loop just ends, as it does on a Redis failure,
    after which ``run_worker`` starts it again. Without this, an idle worker ignored SIGTERM until SIGKILL."""

    stop_requested = False

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested = True
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]  # RQ leaves it untyped


def run_worker(
    settings: Settings, burst: bool = False, *, batch_size: int = DEFAULT_BATCH_SIZE, deliveries: bool = False
) -> None:
    """Work flashsale's queue; with ``burst``, finish the queued jobs, then drain every outbox, then return.
    With ``deliveries``, work the merchant events' queue instead (its own process: a slow merchant never holds
    up a drain); with ``burst`` too, send what is due once more before returning.

    Jobs run in this process (no fork per job): the Redis and database pools live as long as the worker.
    """
    queue_name = DELIVERY_QUEUE_NAME if deliveries else QUEUE_NAME
    context = WorkerContext.from_settings(settings, batch_size=batch_size)
    install(context)
    try:
        while True:
            worker: FlashsaleWorker | None = None
            try:
                worker = FlashsaleWorker([queue_name], connection=context.queue_redis)
                log.info("worker_started", queue=queue_name, burst=burst, batch_size=batch_size, name=worker.name)
                worker.work(burst=burst, logging_level="WARNING")
            except QUEUE_FAILURES as error:  # its start, or its teardown after the failure that ended its loop
                if burst:
                    raise
                log.warning(logs.WORKER_LOST_QUEUE, error=str(error))
            # Outside burst, RQ's loop ends only on a stop request or an error it does not handle.
            if burst:
                break
            if worker is not None and worker.stop_requested:
                log.info("worker_stopped", queue=queue_name, name=worker.name)
                break
            log.warning("worker_restarting", after_seconds=RECONNECT_SECONDS)
            time.sleep(RECONNECT_SECONDS)
        if burst and deliveries:
            if context.merchant is not None:
                deliver_round(context.db, context.merchant)
        elif burst:
            merchant = None if context.merchant is None else MerchantOutbox(context.merchant.give_up_after)
            result = drain_outbox(
                context.engine, context.db, batch_size=batch_size, max_batches=2**62, merchant=merchant
            )
            log.info("outbox_drained", **result.summary())
            if result.failures:
                raise DrainFailed(result.failures)
    finally:
        install(None)
        context.close()


def run_scheduler(settings: Settings) -> None:
    """Register the periodic jobs (idempotently) and enqueue them on time until stopped.

    A failure of the queue's Redis ends rq-scheduler's loop: the scheduler gives back its lock if it can,
    then registers the jobs and runs again."""
    connection = queue_connection(settings)
    while True:
        scheduler = make_scheduler(connection)
        try:
            ids = register(scheduler, settings)
            log.info(
                "scheduler_started",
                jobs=ids,
                reaper_interval_seconds=settings.reaper_interval_seconds,
                drain_interval_seconds=settings.drain_interval_seconds,
            )
            scheduler.run()
            return
        except QUEUE_FAILURES as error:
            log.warning(logs.SCHEDULER_LOST_QUEUE, error=str(error), after_seconds=RECONNECT_SECONDS)
        with contextlib.suppress(redis.exceptions.RedisError):
            scheduler.remove_lock()  # if the new primary has it, it is this scheduler's: others need not wait it out
        time.sleep(RECONNECT_SECONDS)
