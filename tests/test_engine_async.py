"""AsyncEngine runs the same contract on fakeredis, real Redis and a Redis Cluster (redis.asyncio clients)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import fakeredis
import pytest
from redis.cluster import RedisCluster

from engine import AsyncEngine, new_id
from engine.connection import connect, connect_async
from engine.exceptions import (
    HoldAlreadyUsed,
    HoldNotFound,
    InvalidId,
    OrderNotFound,
    OrderNotPending,
    OutOfStock,
    ProductNotFound,
)

ClientFactory = Callable[[], Any]
Scenario = Callable[[AsyncEngine], Awaitable[None]]


@pytest.fixture(params=["fakeredis", "redis", "cluster"])
def async_clients(request: pytest.FixtureRequest) -> Iterator[ClientFactory]:
    """Makes asyncio clients (inside the running loop) to one flushed backend."""
    if request.param == "fakeredis":
        server = fakeredis.FakeServer()
        yield lambda: fakeredis.FakeAsyncRedis(server=server)
    elif request.param == "redis":
        request.getfixturevalue("real_redis")  # flushed before and after
        url = request.getfixturevalue("real_redis_url")
        yield lambda: connect_async(url)
    else:
        url = request.getfixturevalue("cluster_url")
        sync = connect(url, cluster=True)
        sync.flushdb(target_nodes=RedisCluster.PRIMARIES)
        yield lambda: connect_async(url, cluster=True)
        sync.flushdb(target_nodes=RedisCluster.PRIMARIES)
        sync.close()


def run(clients: ClientFactory, scenario: Scenario, **settings: int) -> None:
    async def main() -> None:
        client = clients()
        try:
            await scenario(AsyncEngine(client, **settings))
        finally:
            await client.aclose()

    asyncio.run(main())


def test_async_engine_runs_a_sale_end_to_end(async_clients: ClientFactory) -> None:
    async def scenario(engine: AsyncEngine) -> None:
        assert (await engine.set_stock(1, 10, price_cents=100, max_per_customer=5)).created
        hold = await engine.reserve(1, 2, customer_id="alice", idempotency_key="cart")
        assert (await engine.reserve(1, 2, customer_id="alice", idempotency_key="cart")).hold_id == hold.hold_id
        assert (await engine.hold(hold.hold_id)).status == "active"
        released = await engine.reserve(1, 1)
        assert (await engine.release(released.hold_id)).status == "released"

        order_id = new_id("order", 1)
        order = await engine.convert(hold.hold_id, order_id=order_id)
        assert await engine.convert(hold.hold_id, order_id=order_id) == order
        assert (order.amount_cents, order.status) == (200, "pending")
        paid = await engine.settle(order.order_id, "txn-1", "success", "{}")
        assert (paid.applied, paid.order.status) == (True, "paid")
        assert (await engine.settle(order.order_id, "txn-1", "success")).duplicate
        assert (await engine.order(order.order_id)).transaction_id == "txn-1"

        other = await engine.convert((await engine.reserve(1, 3)).hold_id)
        assert (await engine.cancel(other.order_id)).changed

        snap = await engine.snapshot(1)
        assert (snap.total, snap.available, snap.held, snap.pending, snap.sold) == (10, 8, 0, 0, 2)
        assert (await engine.reap(1)).overdue_left == 0
        stats = await engine.stats(1)
        assert (stats["holds"], stats["orders"], stats["paid"], stats["cancelled"], stats["duplicate"]) == (
            3,
            2,
            1,
            1,
            1,
        )
        events = await engine.read_outbox(1)
        assert [e.event for e in events] == [
            "order_created",
            "order_paid",
            "payment",
            "order_created",
            "order_cancelled",
        ]
        assert await engine.outbox_backlog(1) == 5
        assert await engine.ack_outbox(1, [e.id for e in events]) == 5
        assert await engine.product_ids() == [1]
        restored = await engine.restore(
            1,
            mark=await engine.outbox_mark(1),
            total=10,
            price_cents=100,
            max_per_customer=5,
            starts_at_ms=None,
            ends_at_ms=None,
            sold=2,
        )
        assert restored.available == 8

    run(async_clients, scenario)


def test_async_engine_raises_the_same_errors(async_clients: ClientFactory) -> None:
    async def scenario(engine: AsyncEngine) -> None:
        with pytest.raises(ProductNotFound):
            await engine.reserve(1, 1)
        await engine.set_stock(1, 2)
        hold = await engine.reserve(1, 2)
        with pytest.raises(OutOfStock) as sold_out:
            await engine.reserve(1, 1)
        assert sold_out.value.available == 0
        with pytest.raises(HoldNotFound):
            await engine.convert(new_id("hold", 1))
        order = await engine.convert(hold.hold_id)
        with pytest.raises(HoldAlreadyUsed):
            await engine.convert(hold.hold_id)
        await engine.settle(order.order_id, "txn-1", "success")
        with pytest.raises(OrderNotPending):
            await engine.cancel(order.order_id)
        with pytest.raises(OrderNotFound):
            await engine.order(new_id("order", 1))
        with pytest.raises(InvalidId):
            await engine.release("h1_../../etc")

    run(async_clients, scenario)


def test_async_engine_sees_holds_expire(async_clients: ClientFactory) -> None:
    async def scenario(engine: AsyncEngine) -> None:
        await engine.set_stock(1, 3)
        hold = await engine.reserve(1, 3)
        await asyncio.sleep(0.2)
        assert (await engine.snapshot(1)).available == 3
        assert (await engine.hold(hold.hold_id)).status == "expired"

    run(async_clients, scenario, hold_ttl_ms=150)


@pytest.mark.server_wide
def test_async_engine_keeps_working_after_script_flush(async_clients: ClientFactory) -> None:
    async def scenario(engine: AsyncEngine) -> None:
        await engine.set_stock(1, 3)
        hold = await engine.reserve(1, 1)
        await engine.redis.script_flush()
        order = await engine.convert(hold.hold_id)
        assert (await engine.settle(order.order_id, "txn-1", "failed")).order.status == "cancelled"
        assert (await engine.snapshot(1)).available == 3

    run(async_clients, scenario)
