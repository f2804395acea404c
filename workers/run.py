"""The long-running processes: ``flashsale worker`` and ``flashsale scheduler``."""

from __future__ import annotations

from rq import SimpleWorker

from shared import logs
from shared.settings import Settings
from workers.context import WorkerContext, install, queue_connection
from workers.drain import DEFAULT_BATCH_SIZE, DrainFailed
from workers.drain import drain as drain_outbox
from workers.queues import QUEUE_NAME
from workers.schedule import make_scheduler, register

log = logs.get_logger("flashsale.workers")


def run_worker(settings: Settings, burst: bool = False, *, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
    """Work flashsale's queue; with ``burst``, finish the queued jobs, then drain every outbox, then return.

    Jobs run in this process (no fork per job): the Redis and database pools live as long as the worker.
    """
    context = WorkerContext.from_settings(settings, batch_size=batch_size)
    install(context)
    try:
        worker = SimpleWorker([QUEUE_NAME], connection=context.queue_redis)
        log.info("worker_started", queue=QUEUE_NAME, burst=burst, batch_size=batch_size, name=worker.name)
        worker.work(burst=burst, logging_level="WARNING")
        if burst:
            result = drain_outbox(context.engine, context.db, batch_size=batch_size, max_batches=2**62)
            log.info("outbox_drained", **result.summary())
            if result.failures:
                raise DrainFailed(result.failures)
    finally:
        install(None)
        context.close()


def run_scheduler(settings: Settings) -> None:
    """Register the periodic jobs (idempotently) and enqueue them on time until stopped."""
    connection = queue_connection(settings)
    scheduler = make_scheduler(connection)
    ids = register(scheduler, settings)
    log.info(
        "scheduler_started",
        jobs=ids,
        reaper_interval_seconds=settings.reaper_interval_seconds,
        drain_interval_seconds=settings.drain_interval_seconds,
    )
    scheduler.run()
