"""The RQ jobs. Each is idempotent, so running one twice, or two at once, is harmless."""

from __future__ import annotations

from shared import logs
from workers.context import WorkerContext, current
from workers.deliveries import deliver_round
from workers.drain import DrainFailed, MerchantOutbox
from workers.drain import drain as drain_outbox
from workers.reaper import reap as reap_products
from workers.trigger import DrainTrigger, clear_delivery_request, clear_request, request_delivery

log = logs.get_logger("flashsale.workers")


def _drain(context: WorkerContext) -> dict[str, int]:
    merchant = None if context.merchant is None else MerchantOutbox(context.merchant.give_up_after)
    result = drain_outbox(
        context.engine, context.db, batch_size=context.batch_size, max_batches=context.max_batches, merchant=merchant
    )
    if result.events:
        log.info("outbox_drained", **result.summary())
    if result.merchant_events:
        request_delivery(context.queue_redis)
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


def deliver() -> dict[str, int]:
    """One round of the merchant's events (workers.deliveries); another is asked for if some remain due."""
    context = current()
    clear_delivery_request(context.queue_redis)
    if context.merchant is None:
        return {}
    result = deliver_round(context.db, context.merchant)
    if result.more:
        request_delivery(context.queue_redis)
    return {"delivered": result.delivered, "retried": result.retried, "dead_lettered": result.dead_lettered}
