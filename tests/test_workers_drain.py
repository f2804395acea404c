"""The outbox drain: acknowledge only after commit, lose nothing, duplicate nothing."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
import structlog

from engine import Engine
from engine.ids import parse_id
from engine.keys import product_keys
from persistence import order_writes
from shared import logs
from tests.support.clock import clocked_engine
from tests.support.database import count_rows, order_statuses
from tests.support.sales import add_product, place_orders
from workers import drain as drain_module
from workers.drain import drain


def test_drain_writes_every_order_and_payment_and_empties_the_outbox(real_engine: Engine, db: sa.Engine) -> None:
    add_product(real_engine, db, 1)
    add_product(real_engine, db, 2)
    sale = place_orders(real_engine, 1, 30)
    sale.merge(place_orders(real_engine, 2, 11))

    result = drain(real_engine, db, batch_size=7)

    assert order_statuses(db) == sale.orders
    assert count_rows(db, "payments") == len(sale.payments)
    assert [real_engine.outbox_backlog(p) for p in (1, 2)] == [0, 0]
    assert result.failures == {}
    assert result.orders_written >= len(sale.orders)


def test_nothing_is_acknowledged_when_the_transaction_fails(
    real_engine: Engine, db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_product(real_engine, db, 1)
    place_orders(real_engine, 1, 4)
    backlog = real_engine.outbox_backlog(1)

    def fail(*_: object) -> None:
        raise sa.exc.OperationalError("INSERT", {}, Exception("database went away"))

    monkeypatch.setattr(drain_module, "apply_events", fail)
    result = drain(real_engine, db)

    assert list(result.failures) == [1]
    assert real_engine.outbox_backlog(1) == backlog
    assert count_rows(db, "orders") == 0


def test_a_crash_between_commit_and_ack_is_repaired_by_the_next_drain_exactly_once(
    real_engine: Engine, db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_product(real_engine, db, 1)
    sale = place_orders(real_engine, 1, 12)

    # Given a drain that commits its batch and dies before XDEL
    def die(*_: object) -> None:
        raise SystemExit("killed after commit")

    with monkeypatch.context() as patch:
        patch.setattr(real_engine, "ack_outbox", die)
        with pytest.raises(SystemExit):
            drain(real_engine, db, batch_size=5)
    assert count_rows(db, "orders") > 0
    assert real_engine.outbox_backlog(1) > 0

    # When the next drain re-applies the same entries
    drain(real_engine, db, batch_size=5)

    # Then every order and payment is there once, in its final status
    assert order_statuses(db) == sale.orders
    assert count_rows(db, "payments") == len(sale.payments)
    assert real_engine.outbox_backlog(1) == 0


def test_a_product_that_fails_does_not_block_the_others(real_engine: Engine, db: sa.Engine) -> None:
    add_product(real_engine, db, 1)
    real_engine.set_stock(2, 10)  # in Redis only: its orders cannot reference a catalog row
    place_orders(real_engine, 1, 3)
    place_orders(real_engine, 2, 3)

    result = drain(real_engine, db)

    assert list(result.failures) == [2]
    assert real_engine.outbox_backlog(1) == 0
    assert real_engine.outbox_backlog(2) > 0


def test_the_budget_stops_a_drain_and_says_more_is_left(real_engine: Engine, db: sa.Engine) -> None:
    add_product(real_engine, db, 1)
    place_orders(real_engine, 1, 10)

    result = drain(real_engine, db, batch_size=2, max_batches=3)

    assert (result.batches, result.events, result.more) == (3, 6, True)
    assert real_engine.outbox_backlog(1) > 0


def test_products_drain_in_turn_one_batch_each(real_engine: Engine, db: sa.Engine) -> None:
    for product_id in (1, 2):
        add_product(real_engine, db, product_id)
        place_orders(real_engine, product_id, 10)

    drain(real_engine, db, batch_size=3, max_batches=2)

    assert count_rows(db, "orders") == 2  # one batch of 3 events per product: one order each reached PostgreSQL


def test_expiries_are_logged_with_their_tags(db: sa.Engine, real_engine: Engine) -> None:
    quick_holds = Engine(real_engine.redis, hold_ttl_ms=1)
    quick_orders = Engine(real_engine.redis, order_ttl_ms=1)
    add_product(real_engine, db, 1)
    quick_holds.reserve(1, 2, customer_id="c")
    order = quick_orders.convert(quick_orders.reserve(1, 1).hold_id)
    time.sleep(0.01)
    real_engine.reap(1)

    with structlog.testing.capture_logs() as logged:
        drain(real_engine, db)

    expired = [e for e in logged if e["event"] == logs.HOLD_EXPIRED]
    cancelled = [e for e in logged if e["event"] == logs.ORDER_CANCELLED]
    assert [(e["product_id"], e["quantity"], e["customer_id"]) for e in expired] == [(1, 2, "c")]
    assert [(e["order_id"], e["reason"]) for e in cancelled] == [(order.order_id, "expired")]


def test_a_malformed_event_stops_its_product_and_stays_in_the_outbox(real_engine: Engine, db: sa.Engine) -> None:
    add_product(real_engine, db, 1)
    real_engine.redis.xadd(product_keys(1).outbox, {"event": "order_shipped"})

    result = drain(real_engine, db)

    assert "order_shipped" in result.failures[1]
    assert real_engine.outbox_backlog(1) == 1
    assert order_writes.MalformedEvent.code == "malformed_event"


def test_a_reordered_stream_with_the_payment_first_still_ends_paid_with_the_payment(
    real_engine: Engine, db: sa.Engine
) -> None:
    add_product(real_engine, db, 1)
    order = real_engine.convert(real_engine.reserve(1, 1).hold_id)
    real_engine.settle(order.order_id, "txn-first", "success", "{}")
    # Given a stream whose order_created entry comes after the payment (moved to the end)
    stream = product_keys(1).outbox
    created = next(e for e in real_engine.read_outbox(1) if e.event == "order_created")
    real_engine.ack_outbox(1, [created.id])
    real_engine.redis.xadd(stream, created.fields)
    assert [e.event for e in real_engine.read_outbox(1)] == ["order_paid", "payment", "order_created"]

    # When each event is drained in its own batch
    drain(real_engine, db, batch_size=1)

    # Then the order is paid and the payment recorded
    assert order_statuses(db) == {order.order_id: "paid"}
    assert count_rows(db, "payments") == 1


def test_an_idempotency_key_outliving_its_hold_never_jams_the_drain_on_the_old_hold_id(db: sa.Engine) -> None:
    day_ms = 86_400_000
    with clocked_engine(hold_ttl_ms=120_000) as (engine, clock):
        add_product(engine, db, 1)
        first = engine.reserve(1, 1, customer_id="alice", idempotency_key="cart")
        order = engine.convert(first.hold_id)
        engine.settle(order.order_id, "t1", "success")
        assert drain(engine, db).failures == {}
        clock.advance(day_ms + 120_000)
        # Given a reaper's batch that forgets the hold but ends before its key (they share a score)
        through_hold = engine.redis.zrank(product_keys(1).tombs, f"h:{parse_id(first.hold_id, 'hold').ulid}") + 1
        engine.reap(1, batch=through_hold)

        # When the same caller uses the key again, and buys
        again = engine.reserve(1, 1, customer_id="alice", idempotency_key="cart")
        engine.settle(engine.convert(again.hold_id).order_id, "t2", "success")

        # Then the new order reaches PostgreSQL beside the old one, under a hold id of its own
        assert drain(engine, db).failures == {}
        assert engine.outbox_backlog(1) == 0
        with db.connect() as connection:
            rows = connection.execute(sa.text("SELECT hold_id, status FROM orders ORDER BY created_at")).all()
        assert [tuple(row) for row in rows] == [(first.hold_id, "paid"), (again.hold_id, "paid")]
        assert again.hold_id != first.hold_id
