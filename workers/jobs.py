"""The RQ jobs. Each is idempotent, so running one twice, or two at once, is harmless."""

from __future__ import annotations

from shared import logs
from workers.context import WorkerContext, current
from workers.drain import DrainFailed
from workers.drain import drain as drain_outbox
from workers.reaper import reap as reap_products
from workers.trigger import DrainTrigger, clear_request

log = logs.get_logger("flashsale.workers")


def _drain(context: WorkerContext) -> dict[str, int]:
    result = drain_outbox(context.engine, context.db, batch_size=context.batch_size, max_batches=context.max_batches)
    if result.events:
        log.info("outbox_drained", **result.summary())
    if result.more:
        DrainTrigger(context.queue_redis).enqueue()
    if result.failures:
        raise DrainFailed(result.failures)
    return result.summary()


def drain() -> dict[str, int]:
    context = current()
    clear_request(context.queue_redis)
    return _drain(context)


def reap() -> dict[str, int]:
    context = current()
    totals = reap_products(context.engine)
    if totals.holds_expired or totals.orders_expired:
        log.info(
            "reaped",
            holds_expired=totals.holds_expired,
            orders_expired=totals.orders_expired,
            units_returned=totals.units_returned,
            overdue_left=totals.overdue_left,
        )
    drained = _drain(context)
    return {"holds_expired": totals.holds_expired, "orders_expired": totals.orders_expired, **drained}
