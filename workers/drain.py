"""Drain the engine's outbox into PostgreSQL.

Per batch: read from the product's stream, apply in one transaction, commit, and only then XDEL.
A crash before the commit leaves the batch in the stream; a crash after it leaves the batch to be
applied again, which changes nothing (persistence.order_writes is idempotent and monotonic).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa
import sqlalchemy.exc

from engine import Engine, outbox
from engine.log_fields import order_log_fields, refund_log_fields
from engine.types import OutboxEvent
from persistence.conflicts import log_conflicts
from persistence.exceptions import MalformedEvent
from persistence.order_writes import AppliedBatch, apply_events
from shared import logs

DEFAULT_BATCH_SIZE = 500
DEFAULT_MAX_BATCHES = 200
"""Batches one drain takes before it yields (and asks for another drain), so a job never runs unbounded."""

log = logs.get_logger("flashsale.workers.drain")


class DrainFailed(Exception):
    code = "drain_failed"

    def __init__(self, failures: dict[int, str]) -> None:
        super().__init__("outbox drain failed for products " + ", ".join(f"{p}: {e}" for p, e in failures.items()))
        self.failures = failures


@dataclass
class DrainResult:
    events: int = 0
    batches: int = 0
    orders_written: int = 0
    payments_written: int = 0
    conflicts: int = 0
    """Payments stored in payment_conflicts: their transaction id was already recorded for another order."""
    merchant_events: int = 0
    """Merchant events added to their outbox (to deliver)."""
    more: bool = False
    """The budget ran out before every outbox was empty."""
    failures: dict[int, str] = field(default_factory=dict)

    def add(self, applied: AppliedBatch) -> None:
        self.events += applied.events
        self.batches += 1
        self.orders_written += applied.orders_written
        self.payments_written += applied.payments_written
        self.conflicts += len(applied.conflicts)
        self.merchant_events += applied.merchant_events

    def summary(self) -> dict[str, int]:
        return {
            "events": self.events,
            "batches": self.batches,
            "orders_written": self.orders_written,
            "payments_written": self.payments_written,
            "payment_conflicts": self.conflicts,
            "merchant_events": self.merchant_events,
            "more": int(self.more),
            "failed_products": len(self.failures),
        }


@dataclass(frozen=True)
class MerchantOutbox:
    """The drain records the merchant's events (persistence.merchant_events), each tried for this long."""

    give_up_after: timedelta


def log_refunds(events: Sequence[OutboxEvent]) -> None:
    """A refund request is recorded with its payment: log it once the batch committed (so it is readable)."""
    for event in events:
        if event.event != outbox.PAYMENT:
            continue
        payment = outbox.read_payment(event.fields)
        if payment.refund_required:
            log.warning(
                logs.REFUND_REQUESTED, **refund_log_fields(outbox.read_order(event.fields), payment.transaction_id)
            )


def log_releases(events: Sequence[OutboxEvent]) -> None:
    """Units the engine gave back by expiry: only the outbox tells of them, so the drain logs them (once applied,
    so every order event of the batch is readable)."""
    for event in events:
        if event.event == outbox.HOLD_EXPIRED:
            hold = outbox.read_hold(event.fields)
            log.info(
                logs.HOLD_EXPIRED,
                product_id=event.product_id,
                hold_id=hold.hold_id,
                customer_id=hold.customer_id,
                quantity=hold.quantity,
            )
        elif event.event == outbox.ORDER_CANCELLED:
            order = outbox.read_order(event.fields)
            if order.cancel_reason == "expired":
                log.info(logs.ORDER_CANCELLED, **order_log_fields(order), reason="expired")


def drain_batch(
    engine: Engine,
    db: sa.Engine,
    product_id: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    merchant: MerchantOutbox | None = None,
) -> AppliedBatch:
    events = engine.read_outbox(product_id, count=batch_size)
    if not events:
        return AppliedBatch(0, 0, 0, 0)
    if merchant is None:
        applied = apply_events(db, events)
    else:
        applied = apply_events(db, events, merchant_events=True, merchant_deadline=merchant.give_up_after)
    log_releases(events)
    log_refunds(events)
    log_conflicts(applied.conflicts)
    engine.ack_outbox(product_id, [event.id for event in events])
    return applied


def drain(
    engine: Engine,
    db: sa.Engine,
    product_ids: Sequence[int] | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_batches: int = DEFAULT_MAX_BATCHES,
    merchant: MerchantOutbox | None = None,
) -> DrainResult:
    """Drain every product's outbox (or the given products'), one batch per product in turn.

    A product whose batch fails (a database error, an event this version cannot read) is recorded in
    ``failures`` and skipped; the others still drain. Redis being down raises EngineUnavailable.
    """
    result = DrainResult()
    active = list(engine.product_ids() if product_ids is None else product_ids)
    while active:
        still = []
        for product_id in active:
            if result.batches >= max_batches:
                result.more = True
                return result
            try:
                applied = drain_batch(engine, db, product_id, batch_size, merchant=merchant)
            except (MalformedEvent, sqlalchemy.exc.SQLAlchemyError) as error:
                log.error("outbox_drain_failed", product_id=product_id, error=str(error), code=_code(error))
                result.failures[product_id] = str(error)
                continue
            if applied.events:
                result.add(applied)
            if applied.events >= batch_size:
                still.append(product_id)
        active = still
    return result


def _code(error: Exception) -> str:
    return str(getattr(error, "code", None) or type(error).__name__)
