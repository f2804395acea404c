"""Contract of the outbox: every change PostgreSQL must learn is written by the script that makes it."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from importlib.resources import files
from typing import Any

import pytest
import redis

from engine import Engine, calls, outbox
from engine.exceptions import HoldExpired
from engine.keys import product_keys
from engine.scripts import NAMES
from engine.types import Hold, Order, OutboxEvent, ReserveRequest, WaitingRoomSettings

MakeEngine = Callable[..., Engine]


def sleep_past(instant_ms: int) -> None:
    time.sleep(max(0.0, instant_ms / 1000 - time.time()) + 0.01)


def drain(engine: Engine, product_id: int = 1) -> list[OutboxEvent]:
    events = engine.read_outbox(product_id)
    engine.ack_outbox(product_id, [e.id for e in events])
    return events


def assert_order_event(event: OutboxEvent, name: str, order: Order) -> None:
    assert event.event == name
    assert event.fields["event"] == name
    assert list(event.fields) == list(outbox.FIELDS[name])
    assert {k: event.fields[k] for k in outbox.ORDER} == outbox.order_fields(order)
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
    assert list(lapsed.fields) == list(outbox.FIELDS["hold_expired"])
    assert {k: lapsed.fields[k] for k in ("product_id", "hold_id", "customer_id", "quantity")} == {
        "product_id": "1",
        "hold_id": hold.hold_id,
        "customer_id": "bob",
        "quantity": "3",
    }
    assert_order_event(cancelled, "order_cancelled", engine.order(order.order_id))
    assert cancelled.fields["note"] == "expired"


def test_stock_transitions_write_product_stock(engine: Engine) -> None:
    engine.set_stock(1, 3, low_stock_threshold=2)
    hold = engine.reserve(1, 2)
    engine.reserve(1, 1)
    engine.release(hold.hold_id)

    low, sold_out, back = drain(engine)

    assert [e.event for e in (low, sold_out, back)] == ["product_stock"] * 3
    assert all(list(e.fields) == list(outbox.FIELDS["product_stock"]) for e in (low, sold_out, back))
    assert [outbox.read_stock(e.fields) for e in (low, sold_out, back)] == [
        outbox.StockMove(1, "low_stock", 1, 2),
        outbox.StockMove(1, "sold_out", 0, 2),
        outbox.StockMove(1, "back_in_stock", 2, 2),
    ]


def test_refusals_reads_and_replays_write_nothing(engine: Engine) -> None:
    engine.set_stock(1, 4)  # the reserve and release below never reach 0: no stock transition either
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


# --- The contract with engine/outbox.py: every script, run against Redis itself --------------------------------


def declared_writes(script: str) -> set[str]:
    """The events a script's header says it writes (its ``-- outbox:`` line)."""
    [line] = [line for line in _lua(script).splitlines() if line.startswith("-- outbox:")]
    names = line.removeprefix("-- outbox:").strip()
    return set() if names == "nothing" else {name.strip() for name in names.split(",")}


def _lua(script: str) -> str:
    return (files("engine") / "lua" / f"{script}.lua").read_text(encoding="utf-8")


class Writes:
    """Which events each script call writes, with each entry's field names in order; the outbox is emptied after
    each call, so that ``restore`` may run too."""

    def __init__(self, client: redis.Redis, *engines: Engine) -> None:
        self.client = client
        self.events: dict[str, set[str]] = defaultdict(set)
        self.fields: dict[str, set[tuple[str, ...]]] = defaultdict(set)
        for engine in engines:
            self._spy(engine)

    def _spy(self, engine: Engine) -> None:
        run = engine._run

        def spied(call: calls.Call[Any]) -> Any:
            try:
                return run(call)
            finally:
                self._take(call.script)

        engine._run = spied  # type: ignore[method-assign]

    def _take(self, script: str) -> None:
        self.events[script]  # a script that wrote nothing was run all the same
        outbox_key = product_keys(1).outbox
        entries = self.client.xrange(outbox_key)
        for entry_id, raw in entries:
            names = tuple(name.decode() for name in raw)
            self.events[script].add(raw[b"event"].decode())
            self.fields[raw[b"event"].decode()].add(names)
            self.client.xdel(outbox_key, entry_id)


def poll_or_join(engine: Engine, script: str, ticket: str) -> None:
    """Run the waiting-room script named (each one moves the room on): a join or a poll, alone or in a batch."""
    if script == "queue_join":
        engine.queue_join(1)
    elif script == "queue_join_batch":
        engine.queue_join_many(1, [None])
    elif script == "queue_poll":
        engine.queue_poll(ticket)
    else:
        engine.queue_poll_many([ticket])


def every_script_once_each_way(engine: Engine, short: Engine) -> None:
    """Each script made to write every event it can write (``short``'s holds and orders expire within 1 ms)."""

    def expired_hold() -> Hold:
        hold = short.reserve(1, 1, customer_id="bob")
        sleep_past(hold.expires_at_ms)
        return hold

    def expired_order() -> Order:
        order = short.convert(engine.reserve(1, 1, customer_id="ann").hold_id)
        sleep_past(order.expires_at_ms)
        return order

    engine.set_stock(1, 1_000, price_cents=300)
    for reaps in (
        lambda: engine.reserve(1, 1),
        lambda: engine.reserve_many(1, [ReserveRequest(1)]),
        lambda: engine.set_stock(1, 1_000, price_cents=300),
        lambda: engine.snapshot(1),
        lambda: engine.reap(1),
    ):
        expired_hold()
        reaps()
        expired_order()
        reaps()
    engine.hold(expired_hold().hold_id)
    with pytest.raises(HoldExpired):
        engine.release(expired_hold().hold_id)
    with pytest.raises(HoldExpired):
        engine.convert(expired_hold().hold_id)
    late = expired_order()
    engine.convert(late.hold_id, order_id=late.order_id)  # replays the order, cancelled on the way
    engine.order(expired_order().order_id)
    engine.cancel(engine.convert(engine.reserve(1, 1).hold_id).order_id)
    paid = engine.convert(engine.reserve(1, 1).hold_id)
    engine.settle(paid.order_id, "txn-1", "success", "{}")
    engine.settle(engine.convert(engine.reserve(1, 1).hold_id).order_id, "txn-2", "failed")
    engine.processing(engine.convert(engine.reserve(1, 1).hold_id).order_id, "txn-4", 60_000)
    engine.processing(expired_order().order_id, "txn-5", 60_000)  # cancelled on the way
    engine.settle(expired_order().order_id, "txn-6", "success")  # cancelled on the way, then revived
    engine.set_stock(1, 1_000, price_cents=300, waiting_room=WaitingRoomSettings())  # a waiting room, for a while
    brief = Engine(engine.redis, hold_ttl_ms=200)  # a hold that lapses after the order below (not spied on)
    for step in ("queue_join", "queue_join_batch", "queue_poll", "queue_poll_batch"):
        first, second = engine.queue_join(1), engine.queue_join(1)
        lapsing = brief.reserve(1, 1, admission=first.admission_token)
        unpaid = short.convert(engine.reserve(1, 1, admission=second.admission_token).hold_id)
        sleep_past(max(lapsing.expires_at_ms, unpaid.expires_at_ms))
        poll_or_join(engine, step, first.ticket)  # reaps them
    engine.queue_leave(engine.queue_join(1).ticket)
    engine.queue_info(1)
    engine.set_stock(1, 1_000, price_cents=300)  # the room closed: holds need no admission again
    engine.claim_transaction("txn-3", paid.order_id)
    engine.release_transaction("txn-3", paid.order_id)
    engine.order_states(1, [paid.order_id])
    snapshot = engine.snapshot(1)
    engine.restore(
        1,
        mark=engine.outbox_mark(1),
        total=snapshot.total,
        price_cents=300,
        max_per_customer=0,
        starts_at_ms=None,
        ends_at_ms=None,
        sold=snapshot.sold,
    )


def every_stock_move(engine: Engine, short: Engine) -> None:
    """Each script that moves ``available`` made to move it across 0 (product_stock sold_out, back_in_stock), and
    one across the low-stock threshold; ``edge`` sets the units on sale first (set_stock, itself a transition)."""

    def edge(available: int, low: int = 0, room: WaitingRoomSettings | None = None) -> None:
        snap = engine.snapshot(1)
        total = snap.total - snap.available + available
        engine.set_stock(1, total, price_cents=300, low_stock_threshold=low, waiting_room=room)

    def expired_hold() -> Hold:
        hold = short.reserve(1, 1)  # sells out
        sleep_past(hold.expires_at_ms)
        return hold

    def expired_order() -> Order:
        order = short.convert(engine.reserve(1, 1).hold_id)  # sells out
        sleep_past(order.expires_at_ms)
        return order

    edge(2, low=2)
    engine.reserve(1, 1)  # low_stock
    for takes in (lambda: engine.reserve(1, 1), lambda: engine.reserve_many(1, [ReserveRequest(1)])):
        edge(1)
        takes()
    for gives_back in (
        lambda: engine.reserve(1, 1),
        lambda: engine.reserve_many(1, [ReserveRequest(1)]),
        lambda: engine.set_stock(1, engine.snapshot(1).total, price_cents=300),
        lambda: engine.snapshot(1),
        lambda: engine.reap(1),
    ):
        edge(1)
        expired_hold()
        gives_back()
    edge(1)
    engine.hold(expired_hold().hold_id)
    edge(1)
    with pytest.raises(HoldExpired):
        engine.release(expired_hold().hold_id)
    edge(1)
    with pytest.raises(HoldExpired):
        engine.convert(expired_hold().hold_id)
    edge(1)
    engine.release(engine.reserve(1, 1).hold_id)
    edge(1)
    engine.order(expired_order().order_id)
    edge(1)
    engine.cancel(engine.convert(engine.reserve(1, 1).hold_id).order_id)
    edge(1)
    engine.processing(expired_order().order_id, "txn-7", 60_000)  # cancelled on the way: back in stock
    edge(1)
    engine.settle(expired_order().order_id, "txn-8", "success")  # back in stock, then revived: sold out
    for step in ("queue_join", "queue_join_batch", "queue_poll", "queue_poll_batch"):
        edge(1)  # no room: opening one below starts it empty
        edge(1, room=WaitingRoomSettings())
        ticket = engine.queue_join(1)
        lapsing = short.reserve(1, 1, admission=ticket.admission_token)  # sells out
        sleep_past(lapsing.expires_at_ms)
        poll_or_join(engine, step, ticket.ticket)  # back in stock
    edge(1)  # the room closed


def test_every_script_writes_the_events_its_header_names_with_the_fields_engine_outbox_declares(
    real_redis: redis.Redis,
) -> None:
    engine, short = Engine(real_redis), Engine(real_redis, hold_ttl_ms=1, order_ttl_ms=1)
    writes = Writes(real_redis, engine, short)

    every_script_once_each_way(engine, short)
    every_stock_move(engine, short)

    assert set(writes.events) == set(NAMES), "a script the tour does not run"
    assert {script: writes.events[script] for script in NAMES} == {script: declared_writes(script) for script in NAMES}
    assert dict(writes.fields) == {event: {fields} for event, fields in outbox.FIELDS.items()}


def test_every_declared_event_has_a_script_that_writes_it() -> None:
    written = set().union(*(declared_writes(script) for script in NAMES))

    assert written == set(outbox.FIELDS)
    assert set(outbox.FIELDS) >= outbox.ORDER_EVENTS


def test_a_payment_written_from_python_has_the_fields_settle_writes(engine: Engine) -> None:
    engine.set_stock(1, 10, price_cents=300)
    order = engine.convert(engine.reserve(1, 2, customer_id="alice").hold_id)
    engine.settle(order.order_id, "txn-1", "success", "{}")
    settled = engine.settle(order.order_id, "txn-2", "success", '{"id":"txn-2"}')
    [*_, written] = drain(engine)

    payment = outbox.Payment("txn-2", "success", applied=False, refund_required=True, payload='{"id":"txn-2"}')
    built = outbox.payment_event(settled.order, payment, int(written.fields["at"]))

    assert list(built.fields.items()) == list(written.fields.items())
    assert (outbox.read_order(built.fields), outbox.read_payment(built.fields)) == (settled.order, payment)
