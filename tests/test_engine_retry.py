"""Safe to retry: a call run twice (as redis-py's retry may do) has one effect; SCRIPT FLUSH is survived."""

from __future__ import annotations

from typing import Any, TypeVar

import pytest
import redis
from redis.cluster import RedisCluster

from engine import Engine, calls, new_id, product_keys
from engine.connection import connect
from engine.exceptions import EngineUnavailable
from engine.scripts import NAMES, source
from engine.types import Hold, ReserveRequest, Ticket, WaitingRoomSettings
from flashsale.stack.readiness import free_port

T = TypeVar("T")


def run_twice(redis_client: Any, call: calls.Call[T]) -> tuple[T, T]:
    """Send the same EVALSHA twice, as a driver retry after a lost reply would."""
    script = redis_client.register_script(source(call.script))
    first = call.decode(script(keys=call.keys, args=call.args))
    again = call.decode(script(keys=call.keys, args=call.args))
    return first, again


def test_a_retried_reserve_has_one_effect(engine: Engine, redis_client: Any) -> None:
    engine.set_stock(1, 10, max_per_customer=4)

    first, again = run_twice(redis_client, calls.reserve(1, 3, 60_000, customer_id="alice"))

    assert again == first
    snap = engine.snapshot(1)
    assert (snap.available, snap.held) == (7, 3)
    assert engine.stats(1)["holds"] == 1
    assert engine.reserve(1, 1, customer_id="alice").quantity == 1  # the quota counted 3 units, not 6


def test_a_client_retry_with_the_same_idempotency_key_has_one_effect(engine: Engine, redis_client: Any) -> None:
    engine.set_stock(1, 10)
    script = redis_client.register_script(source("reserve"))
    attempts = [calls.reserve(1, 3, 60_000, idempotency_key="cart-1") for _ in range(2)]  # two fresh hold ids

    first, again = (call.decode(script(keys=call.keys, args=call.args)) for call in attempts)

    assert attempts[0].args[1] != attempts[1].args[1]
    assert again.hold_id == first.hold_id
    assert engine.snapshot(1).held == 3


def test_a_retried_convert_has_one_effect(engine: Engine, redis_client: Any) -> None:
    engine.set_stock(1, 10)
    hold = engine.reserve(1, 2)

    first, again = run_twice(redis_client, calls.convert(hold.hold_id, 60_000, new_id("order", 1)))

    assert again == first
    assert engine.snapshot(1).pending == 2
    assert engine.stats(1)["orders"] == 1
    assert engine.outbox_backlog(1) == 1


def test_a_retried_settle_has_one_effect(engine: Engine, redis_client: Any) -> None:
    engine.set_stock(1, 10)
    order = engine.convert(engine.reserve(1, 2).hold_id)

    first, again = run_twice(redis_client, calls.settle(order.order_id, "txn-1", "success", "{}"))

    assert (first.applied, first.duplicate) == (True, False)
    assert (again.applied, again.duplicate, again.refund_required) == (True, True, False)
    assert again.order == first.order
    assert engine.snapshot(1).sold == 2
    assert [e.event for e in engine.read_outbox(1)] == ["order_created", "order_paid", "payment"]


def test_a_retried_release_and_cancel_have_one_effect(engine: Engine, redis_client: Any) -> None:
    engine.set_stock(1, 10)
    hold = engine.reserve(1, 2)
    order = engine.convert(engine.reserve(1, 3).hold_id)

    released, released_again = run_twice(redis_client, calls.release(hold.hold_id))
    cancelled, cancelled_again = run_twice(redis_client, calls.cancel(order.order_id))

    assert released_again == released
    assert (cancelled.changed, cancelled_again.changed) == (True, False)
    assert cancelled_again.order == cancelled.order
    snap = engine.snapshot(1)
    assert (snap.available, snap.held, snap.pending) == (10, 0, 0)
    assert engine.stats(1)["cancelled"] == 1


def loaded_where_product_1_lives(redis_client: Any, sha: str) -> bool:
    if isinstance(redis_client, RedisCluster):
        node = redis_client.get_node_from_key(product_keys(1).product)
        return bool(node.redis_connection.script_exists(sha) == [True])
    return bool(redis_client.script_exists(sha) == [True])


@pytest.mark.server_wide
def test_the_engine_keeps_working_after_script_flush(engine: Engine, redis_client: Any) -> None:
    engine.set_stock(1, 10)
    hold = engine.reserve(1, 2)
    script = redis_client.register_script(source("reserve"))
    assert loaded_where_product_1_lives(redis_client, script.sha)

    redis_client.script_flush()  # a cluster sends it to every primary

    assert not loaded_where_product_1_lives(redis_client, script.sha)
    order = engine.convert(hold.hold_id)
    assert engine.claim_transaction("txn-1", order.order_id).new
    assert not engine.release_transaction("txn-1", new_id("order", 1))
    assert engine.settle(order.order_id, "txn-1", "success").applied
    other = engine.convert(engine.reserve(1, 1).hold_id)
    assert engine.cancel(other.order_id).changed
    engine.release(engine.reserve(1, 1).hold_id)
    assert engine.hold(hold.hold_id).status == "converted"
    assert engine.order(order.order_id).status == "paid"
    assert engine.processing(order.order_id, "txn-1", 60_000).duplicate
    assert engine.order_states(1, [order.order_id]) == {order.order_id: "paid"}
    assert engine.reap(1).overdue_left == 0
    assert engine.set_stock(1, 12).available == 10
    snap = engine.snapshot(1)
    assert (snap.available, snap.sold) == (10, 2)
    engine.ack_outbox(1, [e.id for e in engine.read_outbox(1)])
    assert (
        engine.restore(
            1,
            mark=engine.outbox_mark(1),
            total=5,
            price_cents=0,
            max_per_customer=0,
            starts_at_ms=None,
            ends_at_ms=None,
            sold=2,
        ).available
        == 3
    )
    [batched] = engine.reserve_many(1, [ReserveRequest(1)])
    assert isinstance(batched, Hold)
    engine.set_stock(2, 1, waiting_room=WaitingRoomSettings())  # open since forever: no pre-queue to draw
    ticket = engine.queue_join(2)
    assert engine.queue_poll(ticket.ticket).state == "admitted"
    [polled] = engine.queue_poll_many([ticket.ticket])
    assert isinstance(polled, Ticket)
    [joined] = engine.queue_join_many(2, [None])
    assert isinstance(joined, Ticket)
    assert engine.queue_info(2).admitted == 1
    assert engine.queue_leave(ticket.ticket) == "left"
    assert len(NAMES) == 23


def test_each_script_loads_on_every_backend(redis_client: Any) -> None:
    for name in NAMES:
        script = redis_client.register_script(source(name))
        assert redis_client.script_load(source(name)) == script.sha


def test_an_unreachable_redis_raises_engine_unavailable() -> None:
    client = connect(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    try:
        with pytest.raises(EngineUnavailable) as refused:
            Engine(client).snapshot(1)
    finally:
        client.close()

    assert refused.value.code == "engine_unavailable"
    assert isinstance(refused.value.__cause__, redis.ConnectionError)
