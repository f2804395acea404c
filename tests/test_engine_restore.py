"""Contract of restore: rebuilding one product's Redis state from the durable record."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from engine import Engine, new_id
from engine.exceptions import (
    HoldAlreadyUsed,
    HoldNotFound,
    InvalidId,
    LimitExceeded,
    OrderNotFound,
    OutboxMoved,
    OutboxNotEmpty,
    StockBelowCommitted,
)
from engine.types import Order, RestoredPayment, StockChange

MakeEngine = Callable[..., Engine]


def drain(engine: Engine, product_id: int = 1) -> None:
    engine.ack_outbox(product_id, [e.id for e in engine.read_outbox(product_id)])


def durable_order(
    status: str, quantity: int, *, customer: str | None = None, note: str = "", expires_in_ms: int = 600_000
) -> Order:
    now = int(time.time() * 1000)
    return Order(
        order_id=new_id("order", 1),
        hold_id=new_id("hold", 1),
        product_id=1,
        customer_id=customer,
        quantity=quantity,
        amount_cents=quantity * 100,
        status=status,  # type: ignore[arg-type]
        created_at_ms=now - 1_000,
        expires_at_ms=now + expires_in_ms,
        closed_at_ms=None if status == "pending" else now - 500,
        transaction_id=note if status == "paid" else None,
        cancel_reason=note if status == "cancelled" else None,  # type: ignore[arg-type]
    )


def restore(engine: Engine, orders: list[Order], **overrides: object) -> StockChange:
    settings: dict[str, object] = {
        "total": 20,
        "price_cents": 100,
        "max_per_customer": 3,
        "starts_at_ms": None,
        "ends_at_ms": None,
        "sold": 8,
        "orders": orders,
        "payments": [],
        "customers": {},
    }
    settings.update(overrides)
    if "mark" not in settings:
        settings["mark"] = engine.outbox_mark(1)
    return engine.restore(1, **settings)  # type: ignore[arg-type]


def test_restore_rebuilds_a_product_from_durable_orders(engine: Engine) -> None:
    pending = durable_order("pending", 2, customer="alice")
    paid = durable_order("paid", 3, customer="bob", note="txn-1")
    cancelled = durable_order("cancelled", 1, customer="alice", note="payment_failed")
    payments = [
        RestoredPayment("txn-1", paid.order_id, "success", True),
        RestoredPayment("txn-0", cancelled.order_id, "failed", True),
    ]

    change = restore(engine, [pending, paid, cancelled], payments=payments, customers={"alice": 2, "bob": 3}, sold=8)

    assert change == StockChange(1, False, 20, 10, 0, 2, 8)
    snap = engine.snapshot(1)
    assert (snap.total, snap.available, snap.held, snap.pending, snap.sold) == (20, 10, 0, 2, 8)
    assert (snap.price_cents, snap.max_per_customer) == (100, 3)
    assert engine.product_ids() == [1]
    restored = engine.order(pending.order_id)
    assert (restored.status, restored.quantity, restored.customer_id, restored.expires_at_ms) == (
        "pending",
        2,
        "alice",
        pending.expires_at_ms,
    )
    assert engine.order(paid.order_id).transaction_id == "txn-1"
    assert engine.order(cancelled.order_id).cancel_reason == "payment_failed"
    with pytest.raises(HoldAlreadyUsed) as used:
        engine.convert(pending.hold_id)
    assert used.value.order_id == pending.order_id
    assert engine.settle(paid.order_id, "txn-1", "success").duplicate
    with pytest.raises(LimitExceeded) as limited:
        engine.reserve(1, 2, customer_id="alice")
    assert limited.value.used == 2
    assert engine.settle(pending.order_id, "txn-2", "success").applied
    assert engine.snapshot(1).sold == 10


def test_restore_replaces_what_redis_held_before(engine: Engine) -> None:
    engine.set_stock(1, 10)
    hold = engine.reserve(1, 2)
    old = engine.convert(engine.reserve(1, 1).hold_id)
    drain(engine)

    restore(engine, [], sold=0)

    assert engine.snapshot(1).available == 20
    with pytest.raises(HoldNotFound):
        engine.release(hold.hold_id)
    with pytest.raises(OrderNotFound):
        engine.order(old.order_id)


def test_restore_refuses_while_the_outbox_is_not_empty(engine: Engine) -> None:
    engine.set_stock(1, 10)
    mark = engine.outbox_mark(1)
    order = engine.convert(engine.reserve(1, 1).hold_id)

    with pytest.raises(OutboxNotEmpty) as refused:
        restore(engine, [], mark=mark)

    assert (refused.value.code, refused.value.backlog) == ("outbox_not_empty", 1)
    assert engine.order(order.order_id).status == "pending"
    assert engine.snapshot(1).total == 10


def test_restore_refuses_a_mark_read_while_events_were_waiting(engine: Engine) -> None:
    # An event waiting at the mark may reach PostgreSQL after the snapshot and leave the outbox before the
    # restore: such a mark proves nothing, and is refused before anything is sent.
    engine.set_stock(1, 10)
    order = engine.convert(engine.reserve(1, 1).hold_id)
    mark = engine.outbox_mark(1)
    drain(engine)

    with pytest.raises(OutboxNotEmpty) as refused:
        restore(engine, [], mark=mark)

    assert (mark.backlog, refused.value.backlog) == (1, 1)
    assert engine.order(order.order_id).status == "pending"


def test_restore_refuses_a_snapshot_older_than_an_event_drained_since(engine: Engine) -> None:
    # Given the mark read (outbox empty) before a snapshot of PostgreSQL with nothing sold
    engine.set_stock(1, 1)
    stale = engine.outbox_mark(1)
    assert stale.backlog == 0
    # When a unit is sold and its events drained before the restore, leaving the outbox empty again
    order = engine.convert(engine.reserve(1, 1).hold_id)
    engine.settle(order.order_id, "txn-late", "success")
    drain(engine)
    assert engine.outbox_backlog(1) == 0

    # Then the stale snapshot is refused, and the sale stands
    with pytest.raises(OutboxMoved) as refused:
        restore(engine, [], total=1, sold=0, mark=stale)
    assert (refused.value.code, refused.value.mark) == ("outbox_moved", stale.last_id)
    assert refused.value.last_id == engine.outbox_mark(1).last_id != stale.last_id
    snap = engine.snapshot(1)
    assert (snap.available, snap.sold) == (0, 1)
    assert engine.order(order.order_id).status == "paid"
    # And a snapshot read after a fresh mark is accepted
    assert restore(engine, [], total=1, sold=1).available == 0


def test_the_outbox_mark_of_an_unknown_product_is_zero(engine: Engine) -> None:
    mark = engine.outbox_mark(1)

    assert (mark.product_id, mark.backlog, mark.last_id) == (1, 0, "0-0")
    assert restore(engine, [], sold=0, mark=mark).available == 20


def test_restore_refuses_a_total_below_pending_and_sold(engine: Engine) -> None:
    with pytest.raises(StockBelowCommitted) as refused:
        restore(engine, [durable_order("pending", 3)], total=10, sold=8)

    assert refused.value.committed == 11


def test_restore_twice_has_one_effect(engine: Engine) -> None:
    orders = [durable_order("pending", 2), durable_order("paid", 1, note="txn-1")]

    first = restore(engine, orders)
    again = restore(engine, orders)

    assert first == again
    assert engine.snapshot(1).pending == 2


def test_restored_pending_orders_still_expire(engine: Engine) -> None:
    order = durable_order("pending", 2, expires_in_ms=150)
    restore(engine, [order])
    time.sleep(0.2)

    assert engine.order(order.order_id).cancel_reason == "expired"
    assert engine.snapshot(1).pending == 0


def test_restore_rejects_orders_of_another_product(engine: Engine) -> None:
    stray = Order(
        order_id=new_id("order", 2),
        hold_id=new_id("hold", 2),
        product_id=2,
        customer_id=None,
        quantity=1,
        amount_cents=0,
        status="pending",
        created_at_ms=0,
        expires_at_ms=0,
        closed_at_ms=None,
        transaction_id=None,
        cancel_reason=None,
    )

    with pytest.raises(InvalidId):
        restore(engine, [stray])
    assert engine.product_ids() == []


def test_restore_rejects_payments_for_orders_of_another_product(engine: Engine) -> None:
    with pytest.raises(InvalidId):
        restore(engine, [], payments=[RestoredPayment("txn-1", new_id("order", 2), "success", True)])
    assert engine.product_ids() == []
