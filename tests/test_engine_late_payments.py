"""Payments that take their time: `processing` holds the order once, a late success revives it when it can."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from engine import Engine, new_id
from engine.exceptions import LimitExceeded, OrderNotFound, OrderNotPending
from engine.types import Order
from tests.support.clock import clocked_engine

MakeEngine = Callable[..., Engine]
GRACE_MS = 600_000


def counters(engine: Engine, product_id: int = 1) -> tuple[int, int, int, int]:
    s = engine.snapshot(product_id)
    assert s.consistent
    return s.available, s.held, s.pending, s.sold


def pending_order(engine: Engine, quantity: int = 2, customer_id: str | None = "ann") -> Order:
    return engine.convert(engine.reserve(1, quantity, customer_id=customer_id).hold_id)


def test_processing_extends_a_pending_order_once_from_that_moment() -> None:
    with clocked_engine(order_ttl_ms=60_000) as (engine, clock):
        engine.set_stock(1, 10)
        order = pending_order(engine)
        clock.advance(50_000)

        first = engine.processing(order.order_id, "txn-1", GRACE_MS)
        clock.advance(1_000)
        again = engine.processing(order.order_id, "txn-1", GRACE_MS)
        other = engine.processing(order.order_id, "txn-2", GRACE_MS)

        assert (first.extended, first.duplicate) == (True, False)
        assert first.order.expires_at_ms == order.created_at_ms + 50_000 + GRACE_MS
        assert (again.extended, again.duplicate) == (False, True)
        assert (other.extended, other.duplicate) == (False, False)
        assert other.order.expires_at_ms == first.order.expires_at_ms  # later processing changes nothing
        assert engine.order(order.order_id).expires_at_ms == first.order.expires_at_ms
        assert counters(engine) == (8, 0, 2, 0)  # its units stay pending
        assert engine.stats(1)["processing"] == 1


def test_an_extended_order_waits_for_its_payment_past_the_order_ttl_then_is_paid() -> None:
    with clocked_engine(order_ttl_ms=60_000) as (engine, clock):
        engine.set_stock(1, 10)
        order = pending_order(engine)
        engine.processing(order.order_id, "txn-1", GRACE_MS)
        clock.advance(120_000)  # past the order TTL, within the grace
        assert engine.reap(1).orders_expired == 0

        paid = engine.settle(order.order_id, "txn-1", "success")

        assert (paid.applied, paid.revived, paid.order.status) == (True, False, "paid")
        assert counters(engine) == (8, 0, 0, 2)


def test_an_extended_order_still_lapses_at_the_end_of_its_grace() -> None:
    with clocked_engine(order_ttl_ms=60_000) as (engine, clock):
        engine.set_stock(1, 10)
        order = pending_order(engine)
        engine.processing(order.order_id, "txn-1", GRACE_MS)
        clock.advance(GRACE_MS + 1)

        assert engine.reap(1).orders_expired == 1
        assert (engine.order(order.order_id).status, counters(engine)) == ("cancelled", (10, 0, 0, 0))


def test_processing_changes_nothing_on_an_order_no_longer_pending(engine: Engine) -> None:
    engine.set_stock(1, 10)
    order = pending_order(engine)
    paid = engine.settle(order.order_id, "txn-1", "success")

    late = engine.processing(order.order_id, "txn-1", GRACE_MS)  # the success came first
    other = engine.processing(order.order_id, "txn-2", GRACE_MS)

    assert (late.duplicate, late.extended, other.extended) == (True, False, False)
    assert engine.order(order.order_id).expires_at_ms == paid.order.expires_at_ms
    with pytest.raises(OrderNotFound):
        engine.processing(new_id("order", 1), "txn-3", GRACE_MS)


def test_a_late_success_revives_an_expired_order_while_its_units_are_available() -> None:
    with clocked_engine(order_ttl_ms=60_000) as (engine, clock):
        engine.set_stock(1, 10, max_per_customer=2)
        order = pending_order(engine)
        clock.advance(60_001)
        assert engine.reap(1).orders_expired == 1
        assert counters(engine) == (10, 0, 0, 0)

        revived = engine.settle(order.order_id, "txn-late", "success")

        assert (revived.applied, revived.revived, revived.refund_required) == (True, True, False)
        assert (revived.order.status, revived.order.transaction_id, revived.order.revived) == (
            "paid",
            "txn-late",
            True,
        )
        assert counters(engine) == (8, 0, 0, 2)
        assert engine.order(order.order_id).revived
        assert engine.stats(1)["revived"] == 1
        again = engine.settle(order.order_id, "txn-late", "success")
        assert (again.duplicate, again.applied, again.refund_required) == (True, True, False)
        with pytest.raises(OrderNotPending):
            engine.cancel(order.order_id)
        with pytest.raises(LimitExceeded):  # the revived units count against the customer's limit again
            engine.reserve(1, 1, customer_id="ann")


def test_a_late_success_without_the_units_stays_cancelled_and_needs_a_refund() -> None:
    with clocked_engine(order_ttl_ms=60_000) as (engine, clock):
        engine.set_stock(1, 3)
        order = pending_order(engine)
        clock.advance(60_001)
        engine.reserve(1, 2, customer_id="bob")  # two of its units went to someone else: one is left

        settled = engine.settle(order.order_id, "txn-late", "success")

        assert (settled.applied, settled.revived, settled.refund_required) == (False, False, True)
        assert (settled.order.status, settled.order.cancel_reason) == ("cancelled", "expired")
        assert counters(engine) == (1, 2, 0, 0)


def test_only_an_order_that_expired_unpaid_is_revived(engine: Engine) -> None:
    engine.set_stock(1, 10)
    cancelled = pending_order(engine)
    engine.cancel(cancelled.order_id)
    failed = pending_order(engine)
    engine.settle(failed.order_id, "txn-f", "failed")

    for order, txn in ((cancelled, "txn-1"), (failed, "txn-2")):
        settled = engine.settle(order.order_id, txn, "success")
        assert (settled.applied, settled.revived, settled.refund_required) == (False, False, True)
    assert counters(engine) == (10, 0, 0, 0)


def test_a_revival_on_every_backend_keeps_the_invariant(make_engine: MakeEngine) -> None:
    import time

    engine = make_engine(order_ttl_ms=150)
    engine.set_stock(1, 4)
    order = pending_order(engine)
    time.sleep(max(0.0, order.expires_at_ms / 1000 - time.time()) + 0.01)

    revived = engine.settle(order.order_id, "txn-late", "success")

    assert (revived.revived, revived.order.status) == (True, "paid")
    assert counters(engine) == (2, 0, 0, 2)
