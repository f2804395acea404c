"""Contract of settle, cancel, order expiry and reap."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from engine import Engine, new_id
from engine.exceptions import LimitExceeded, OrderNotFound, OrderNotPending
from engine.keys import product_keys
from engine.types import Order, ReapResult
from tests.support.clock import clocked_engine

MakeEngine = Callable[..., Engine]


def sleep_past(instant_ms: int) -> None:
    """Sleep until just after ``instant_ms``; the test servers share this machine's clock."""
    time.sleep(max(0.0, instant_ms / 1000 - time.time()) + 0.01)


def counters(engine: Engine, product_id: int = 1) -> tuple[int, int, int, int]:
    s = engine.snapshot(product_id)
    assert s.consistent
    return s.available, s.held, s.pending, s.sold


def pending_order(engine: Engine, quantity: int = 2, customer_id: str | None = None) -> Order:
    return engine.convert(engine.reserve(1, quantity, customer_id=customer_id).hold_id)


def test_a_successful_payment_marks_the_order_paid(engine: Engine) -> None:
    engine.set_stock(1, 10, price_cents=100)
    order = pending_order(engine)

    settled = engine.settle(order.order_id, "txn-1", "success", '{"id": "txn-1"}')

    assert (settled.applied, settled.duplicate, settled.refund_required) == (True, False, False)
    assert (settled.transaction_id, settled.result) == ("txn-1", "success")
    paid = settled.order
    assert (paid.order_id, paid.status, paid.transaction_id, paid.cancel_reason) == (
        order.order_id,
        "paid",
        "txn-1",
        None,
    )
    assert paid.closed_at_ms is not None
    assert paid.closed_at_ms >= order.created_at_ms
    assert engine.order(order.order_id) == paid
    assert counters(engine) == (8, 0, 0, 2)
    assert engine.stats(1)["paid"] == 1


def test_a_failed_payment_cancels_the_order_and_returns_its_units(engine: Engine) -> None:
    engine.set_stock(1, 10, max_per_customer=2)
    order = pending_order(engine, customer_id="alice")

    settled = engine.settle(order.order_id, "txn-1", "failed")

    assert (settled.applied, settled.refund_required) == (True, False)
    assert (settled.order.status, settled.order.cancel_reason, settled.order.transaction_id) == (
        "cancelled",
        "payment_failed",
        None,
    )
    assert counters(engine) == (10, 0, 0, 0)
    assert engine.stats(1)["payment_failed"] == 1
    assert engine.reserve(1, 2, customer_id="alice").quantity == 2


@pytest.mark.parametrize(("result", "status"), [("success", "paid"), ("failed", "cancelled")])
def test_a_repeated_transaction_reports_a_duplicate_with_the_current_state(
    engine: Engine, result: Any, status: str
) -> None:
    engine.set_stock(1, 10)
    order = pending_order(engine)
    first = engine.settle(order.order_id, "txn-1", result)
    before = counters(engine)

    again = engine.settle(order.order_id, "txn-1", "success" if result == "failed" else "failed")

    assert (again.duplicate, again.applied, again.refund_required) == (True, True, False)
    assert again.order == first.order
    assert again.order.status == status
    assert counters(engine) == before
    assert engine.stats(1)["duplicate"] == 1


def test_a_duplicate_reports_the_order_the_transaction_was_applied_to(engine: Engine) -> None:
    engine.set_stock(1, 10)
    paid = pending_order(engine)
    other = pending_order(engine)
    engine.settle(paid.order_id, "txn-1", "success")

    again = engine.settle(other.order_id, "txn-1", "success")

    assert again.duplicate
    assert again.order.order_id == paid.order_id
    assert engine.order(other.order_id).status == "pending"


def test_a_new_transaction_on_a_paid_order_is_not_applied(engine: Engine) -> None:
    engine.set_stock(1, 10)
    order = pending_order(engine)
    engine.settle(order.order_id, "txn-1", "success")

    late_failure = engine.settle(order.order_id, "txn-3", "failed")

    assert (late_failure.applied, late_failure.duplicate, late_failure.refund_required) == (False, False, False)
    assert (late_failure.order.status, late_failure.order.transaction_id) == ("paid", "txn-1")
    assert counters(engine) == (8, 0, 0, 2)


def test_a_second_charge_on_a_paid_order_is_flagged_for_refund(engine: Engine) -> None:
    engine.set_stock(1, 10)
    order = pending_order(engine)
    engine.settle(order.order_id, "txn-1", "success")

    second = engine.settle(order.order_id, "txn-2", "success", '{"id": "txn-2"}')

    assert (second.applied, second.duplicate, second.refund_required) == (False, False, True)
    assert (second.order.status, second.order.transaction_id) == ("paid", "txn-1")
    assert counters(engine) == (8, 0, 0, 2)
    assert engine.stats(1)["refund_required"] == 1
    (payment,) = [e for e in engine.read_outbox(1) if e.event == "payment" and e.fields["transaction_id"] == "txn-2"]
    assert (payment.fields["applied"], payment.fields["refund_required"]) == ("0", "1")
    again = engine.settle(order.order_id, "txn-2", "success")
    assert (again.duplicate, again.applied, again.refund_required) == (True, False, True)
    assert engine.stats(1)["refund_required"] == 1  # a duplicate is not a second refund


def test_a_new_transaction_on_a_cancelled_order_is_not_applied(engine: Engine) -> None:
    engine.set_stock(1, 10)
    order = pending_order(engine)
    engine.cancel(order.order_id)

    late_failure = engine.settle(order.order_id, "txn-1", "failed")
    late_success = engine.settle(order.order_id, "txn-2", "success")

    assert (late_failure.applied, late_failure.refund_required) == (False, False)
    assert (late_success.applied, late_success.refund_required) == (False, True)
    assert (late_success.order.status, late_success.order.cancel_reason) == ("cancelled", "cancelled")
    assert counters(engine) == (10, 0, 0, 0)


def test_a_payment_for_an_order_that_expired_unpaid_and_sold_out_requires_a_refund(make_engine: MakeEngine) -> None:
    engine = make_engine(order_ttl_ms=150)
    engine.set_stock(1, 2)
    order = pending_order(engine)
    sleep_past(order.expires_at_ms)
    engine.reserve(1, 2)  # its units went to someone else

    settled = engine.settle(order.order_id, "txn-1", "success")

    assert (settled.applied, settled.duplicate, settled.refund_required) == (False, False, True)
    assert (settled.order.status, settled.order.cancel_reason) == ("cancelled", "expired")
    assert counters(engine) == (0, 2, 0, 0)
    again = engine.settle(order.order_id, "txn-1", "success")
    assert (again.duplicate, again.applied, again.refund_required) == (True, False, True)


def test_settle_refuses_an_unknown_order_and_forgets_the_transaction(engine: Engine) -> None:
    engine.set_stock(1, 10)
    unknown = new_id("order", 1)

    with pytest.raises(OrderNotFound) as refused:
        engine.settle(unknown, "txn-1", "success")

    assert (refused.value.code, refused.value.order_id) == ("order_not_found", unknown)
    order = pending_order(engine)
    assert engine.settle(order.order_id, "txn-1", "success").applied


@pytest.mark.parametrize(
    ("transaction_id", "result"),
    [("", "success"), ("t" * 129, "success"), ("a|b", "success"), ("t-\ud800", "success"), ("txn-1", "refunded")],
)
def test_settle_rejects_bad_input_without_a_change(engine: Engine, transaction_id: str, result: Any) -> None:
    engine.set_stock(1, 10)
    order = pending_order(engine)

    with pytest.raises(ValueError, match=r"transaction_id|result"):
        engine.settle(order.order_id, transaction_id, result)

    assert engine.order(order.order_id).status == "pending"
    assert engine.outbox_backlog(1) == 1  # order_created only


def test_cancel_moves_a_pending_order_to_cancelled(engine: Engine) -> None:
    engine.set_stock(1, 10, max_per_customer=2)
    order = pending_order(engine, customer_id="alice")

    cancelled = engine.cancel(order.order_id)

    assert cancelled.changed
    assert (cancelled.order.status, cancelled.order.cancel_reason) == ("cancelled", "cancelled")
    assert cancelled.order.closed_at_ms is not None
    assert counters(engine) == (10, 0, 0, 0)
    assert engine.stats(1)["cancelled"] == 1
    assert engine.reserve(1, 2, customer_id="alice").quantity == 2


def test_cancel_twice_leaves_the_order_unchanged(engine: Engine) -> None:
    engine.set_stock(1, 10)
    order = pending_order(engine)
    first = engine.cancel(order.order_id)

    again = engine.cancel(order.order_id)

    assert not again.changed
    assert again.order == first.order
    assert counters(engine) == (10, 0, 0, 0)
    assert engine.stats(1)["cancelled"] == 1


def test_cancel_refuses_a_paid_order(engine: Engine) -> None:
    engine.set_stock(1, 10)
    order = pending_order(engine)
    engine.settle(order.order_id, "txn-1", "success")

    with pytest.raises(OrderNotPending) as refused:
        engine.cancel(order.order_id)

    assert (refused.value.code, refused.value.status) == ("order_not_pending", "paid")
    assert counters(engine) == (8, 0, 0, 2)


def test_cancel_refuses_an_unknown_order(engine: Engine) -> None:
    engine.set_stock(1, 10)

    with pytest.raises(OrderNotFound):
        engine.cancel(new_id("order", 1))
    with pytest.raises(OrderNotFound):
        engine.order(new_id("order", 1))


def test_an_unpaid_order_expires_lazily(make_engine: MakeEngine) -> None:
    engine = make_engine(order_ttl_ms=150)
    engine.set_stock(1, 10, max_per_customer=2)
    order = pending_order(engine, customer_id="alice")
    sleep_past(order.expires_at_ms)

    expired = engine.order(order.order_id)

    assert (expired.status, expired.cancel_reason) == ("cancelled", "expired")
    assert expired.closed_at_ms is not None
    assert expired.closed_at_ms >= order.expires_at_ms
    assert counters(engine) == (10, 0, 0, 0)
    assert engine.stats(1)["order_expired"] == 1
    assert engine.reserve(1, 2, customer_id="alice").quantity == 2


def test_snapshot_returns_the_units_of_an_unpaid_order_right_after_expiry(make_engine: MakeEngine) -> None:
    engine = make_engine(order_ttl_ms=150)
    engine.set_stock(1, 10)
    order = pending_order(engine, quantity=3)
    sleep_past(order.expires_at_ms)

    assert counters(engine) == (10, 0, 0, 0)
    assert engine.order(order.order_id).cancel_reason == "expired"


def test_cancelling_an_overdue_order_records_its_expiry(make_engine: MakeEngine) -> None:
    engine = make_engine(order_ttl_ms=150)
    engine.set_stock(1, 10)
    order = pending_order(engine)
    sleep_past(order.expires_at_ms)

    cancelled = engine.cancel(order.order_id)

    assert cancelled.changed
    assert cancelled.order.cancel_reason == "expired"
    assert engine.stats(1)["order_expired"] == 1


def test_reap_expires_overdue_holds_and_unpaid_orders(make_engine: MakeEngine) -> None:
    engine, short = make_engine(), make_engine(hold_ttl_ms=200, order_ttl_ms=200)  # one client, two TTLs
    engine.set_stock(1, 10)
    holds = [short.reserve(1, 1), short.reserve(1, 2)]
    order = short.convert(engine.reserve(1, 3).hold_id)
    sleep_past(max(order.expires_at_ms, *(h.expires_at_ms for h in holds)))

    reaped = engine.reap(1)

    assert reaped == ReapResult(
        1, holds_expired=2, orders_expired=1, units_returned=6, tombstones_pruned=0, overdue_left=0
    )
    assert engine.reap(1) == ReapResult(1, 0, 0, 0, 0, 0)
    assert engine.order(order.order_id).cancel_reason == "expired"
    assert counters(engine) == (10, 0, 0, 0)


def test_reap_works_in_bounded_batches(make_engine: MakeEngine) -> None:
    engine = make_engine(hold_ttl_ms=200)
    engine.set_stock(1, 10)
    holds = [engine.reserve(1, 1) for _ in range(5)]
    sleep_past(holds[-1].expires_at_ms)
    product = product_keys(1).product

    assert engine.reap(1, batch=2) == ReapResult(1, 2, 0, 2, 0, 3)
    assert int(engine.redis.hget(product, "held")) == 3
    assert engine.reap(1, batch=2).overdue_left == 1
    assert engine.reap(1, batch=2) == ReapResult(1, 1, 0, 1, 0, 0)
    assert int(engine.redis.hget(product, "held")) == 0


@pytest.mark.parametrize("batch", [0, -1])
def test_reap_rejects_a_batch_below_one(engine: Engine, batch: int) -> None:
    engine.set_stock(1, 10)

    with pytest.raises(ValueError, match="batch"):
        engine.reap(1, batch=batch)


def test_reap_of_an_unknown_product_does_nothing(engine: Engine) -> None:
    assert engine.reap(7) == ReapResult(7, 0, 0, 0, 0, 0)


def test_an_expired_order_frees_the_customer_limit() -> None:
    with clocked_engine(order_ttl_ms=1_000) as (engine, clock):
        engine.set_stock(1, 10, max_per_customer=1)
        pending_order(engine, quantity=1, customer_id="alice")
        with pytest.raises(LimitExceeded):
            engine.reserve(1, 1, customer_id="alice")
        clock.advance(1_000)

        assert engine.reserve(1, 1, customer_id="alice").quantity == 1
