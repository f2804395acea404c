"""Contract of the outbox: every change PostgreSQL must learn is written by the script that makes it."""

from __future__ import annotations

import time
from collections.abc import Callable

from engine import Engine
from engine.types import Order, OutboxEvent

MakeEngine = Callable[..., Engine]

ORDER_FIELDS = {
    "event",
    "at",
    "order_id",
    "product_id",
    "hold_id",
    "customer_id",
    "quantity",
    "amount_cents",
    "status",
    "created_ms",
    "expires_ms",
    "closed_ms",
    "note",
}
PAYMENT_FIELDS = ORDER_FIELDS | {"transaction_id", "result", "applied", "refund_required", "payload"}
HOLD_EXPIRED_FIELDS = {"event", "at", "product_id", "hold_id", "customer_id", "quantity"}


def sleep_past(instant_ms: int) -> None:
    time.sleep(max(0.0, instant_ms / 1000 - time.time()) + 0.01)


def drain(engine: Engine, product_id: int = 1) -> list[OutboxEvent]:
    events = engine.read_outbox(product_id)
    engine.ack_outbox(product_id, [e.id for e in events])
    return events


def order_fields(order: Order) -> dict[str, str]:
    """The whole order as every order event carries it."""
    note = (order.transaction_id if order.status == "paid" else order.cancel_reason) or ""
    return {
        "order_id": order.order_id,
        "product_id": str(order.product_id),
        "hold_id": order.hold_id,
        "customer_id": order.customer_id or "",
        "quantity": str(order.quantity),
        "amount_cents": str(order.amount_cents),
        "status": order.status,
        "created_ms": str(order.created_at_ms),
        "expires_ms": str(order.expires_at_ms),
        "closed_ms": str(order.closed_at_ms or 0),
        "note": note,
    }


def assert_order_event(event: OutboxEvent, name: str, order: Order) -> None:
    assert event.event == name
    assert event.fields["event"] == name
    assert set(event.fields) == (PAYMENT_FIELDS if name == "payment" else ORDER_FIELDS)
    assert {k: event.fields[k] for k in order_fields(order)} == order_fields(order)
    assert abs(int(event.fields["at"]) - time.time() * 1000) < 5_000


def test_convert_writes_order_created_with_the_whole_order(engine: Engine) -> None:
    engine.set_stock(1, 10, price_cents=300)
    order = engine.convert(engine.reserve(1, 2, customer_id="alice").hold_id)

    [created] = drain(engine)

    assert_order_event(created, "order_created", order)
    assert created.product_id == 1
    assert created.fields["created_ms"] == created.fields["at"]


def test_a_successful_payment_writes_order_paid_then_payment(engine: Engine) -> None:
    engine.set_stock(1, 10, price_cents=300)
    order = engine.convert(engine.reserve(1, 2).hold_id)
    drain(engine)

    settled = engine.settle(order.order_id, "txn-1", "success", '{"id":"txn-1","amount":600}')

    paid, payment = drain(engine)
    assert_order_event(paid, "order_paid", settled.order)
    assert_order_event(payment, "payment", settled.order)
    assert paid.fields["note"] == "txn-1"
    assert (payment.fields["transaction_id"], payment.fields["result"], payment.fields["applied"]) == (
        "txn-1",
        "success",
        "1",
    )
    assert payment.fields["payload"] == '{"id":"txn-1","amount":600}'


def test_a_failed_payment_writes_order_cancelled_then_payment(engine: Engine) -> None:
    engine.set_stock(1, 10)
    order = engine.convert(engine.reserve(1, 2).hold_id)
    drain(engine)

    settled = engine.settle(order.order_id, "txn-1", "failed")

    cancelled, payment = drain(engine)
    assert_order_event(cancelled, "order_cancelled", settled.order)
    assert cancelled.fields["note"] == "payment_failed"
    assert (payment.fields["result"], payment.fields["applied"], payment.fields["payload"]) == ("failed", "1", "")


def test_a_payment_that_is_not_applied_is_still_recorded(engine: Engine) -> None:
    engine.set_stock(1, 10)
    order = engine.convert(engine.reserve(1, 2).hold_id)
    engine.settle(order.order_id, "txn-1", "success")
    drain(engine)

    late = engine.settle(order.order_id, "txn-2", "success", "{}")

    [payment] = drain(engine)
    assert_order_event(payment, "payment", late.order)
    assert (payment.fields["transaction_id"], payment.fields["applied"]) == ("txn-2", "0")


def test_cancel_writes_order_cancelled(engine: Engine) -> None:
    engine.set_stock(1, 10)
    order = engine.convert(engine.reserve(1, 2).hold_id)
    drain(engine)

    cancelled = engine.cancel(order.order_id).order

    [event] = drain(engine)
    assert_order_event(event, "order_cancelled", cancelled)
    assert event.fields["note"] == "cancelled"


def test_expiry_writes_hold_expired_and_order_cancelled(make_engine: MakeEngine) -> None:
    engine, short = make_engine(), make_engine(hold_ttl_ms=150, order_ttl_ms=150)  # one client, two TTLs
    engine.set_stock(1, 10)
    hold = short.reserve(1, 3, customer_id="bob")
    order = short.convert(engine.reserve(1, 2).hold_id)
    drain(engine)
    sleep_past(max(hold.expires_at_ms, order.expires_at_ms))

    engine.reap(1)

    lapsed, cancelled = drain(engine)
    assert lapsed.event == "hold_expired"
    assert set(lapsed.fields) == HOLD_EXPIRED_FIELDS
    assert {k: lapsed.fields[k] for k in ("product_id", "hold_id", "customer_id", "quantity")} == {
        "product_id": "1",
        "hold_id": hold.hold_id,
        "customer_id": "bob",
        "quantity": "3",
    }
    assert_order_event(cancelled, "order_cancelled", engine.order(order.order_id))
    assert cancelled.fields["note"] == "expired"


def test_refusals_reads_and_replays_write_nothing(engine: Engine) -> None:
    engine.set_stock(1, 3)
    hold = engine.reserve(1, 2, idempotency_key="k")
    order = engine.convert(hold.hold_id)
    engine.settle(order.order_id, "txn-1", "success")
    drain(engine)

    engine.reserve(1, 2, idempotency_key="k")
    engine.convert(hold.hold_id, order_id=order.order_id)
    engine.settle(order.order_id, "txn-1", "success")
    engine.release(engine.reserve(1, 1).hold_id)
    engine.snapshot(1)
    engine.hold(hold.hold_id)
    engine.order(order.order_id)
    engine.reap(1)

    assert drain(engine) == []


def test_acknowledged_events_leave_the_outbox(engine: Engine) -> None:
    engine.set_stock(1, 10)
    for _ in range(3):
        engine.convert(engine.reserve(1, 1).hold_id)
    events = engine.read_outbox(1)
    assert engine.outbox_backlog(1) == engine.snapshot(1).outbox_backlog == 3

    assert engine.ack_outbox(1, [events[0].id, events[1].id]) == 2

    assert [e.id for e in engine.read_outbox(1)] == [events[2].id]
    assert engine.read_outbox(1, count=1) == engine.read_outbox(1)
    assert engine.ack_outbox(1, []) == 0
    assert engine.outbox_backlog(1) == 1


def test_each_product_has_its_own_outbox(engine: Engine) -> None:
    engine.set_stock(1, 10)
    engine.set_stock(2, 10)
    engine.convert(engine.reserve(2, 1).hold_id)

    assert engine.read_outbox(1) == []
    [event] = engine.read_outbox(2)
    assert (event.product_id, event.fields["product_id"]) == (2, "2")
    assert engine.product_ids() == [1, 2]
