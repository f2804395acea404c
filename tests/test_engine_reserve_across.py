"""reserve_batch across products: the reserves of several products in one script call (one per hash slot on a
Redis Cluster), each answered as if made alone, and the asyncio engine's one queue for every product."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.cluster import RedisCluster

from engine import AsyncEngine, Engine, calls
from engine.exceptions import EngineError, LimitExceeded, OutOfStock, ProductNotFound
from engine.keys import product_slot
from engine.types import Hold, ProductReserve, ReserveRequest
from tests.test_engine_async import ClientFactory, async_clients, run

__all__ = ["async_clients"]  # the fixture, collected here


def same_slot_products(count: int, start: int = 1) -> list[int]:
    """``count`` product ids whose keys share one Redis Cluster hash slot."""
    by_slot: dict[int, list[int]] = {}
    for product_id in range(start, start + 200_000):
        found = by_slot.setdefault(product_slot(product_id), [])
        found.append(product_id)
        if len(found) == count:
            return found
    raise AssertionError("no slot shared")


def r(product_id: int, quantity: int = 1, customer: str | None = None) -> ProductReserve:
    return ProductReserve(product_id, ReserveRequest(quantity, customer_id=customer))


def balanced(engine: Engine, product_id: int) -> bool:
    s = engine.snapshot(product_id)
    parts = (s.available, s.held, s.pending, s.sold)
    return s.total == sum(parts) and min(parts) >= 0


def test_reserves_of_several_products_are_answered_each_as_if_made_in_turn(engine: Engine) -> None:
    engine.set_stock(1, 2)
    engine.set_stock(2, 1)
    engine.set_stock(3, 5)

    results = engine.reserve_across([r(1), r(2), r(1), r(3, 4), r(2), r(1), r(3, 2)])

    kinds = [type(x).__name__ for x in results]
    assert kinds == ["Hold", "Hold", "Hold", "Hold", "OutOfStock", "OutOfStock", "OutOfStock"]
    assert [x.product_id for x in results if isinstance(x, Hold)] == [1, 2, 1, 3]
    assert [x.available for x in results if isinstance(x, Hold)] == [1, 0, 0, 1]
    assert [engine.snapshot(p).held for p in (1, 2, 3)] == [2, 1, 4]
    assert all(balanced(engine, p) for p in (1, 2, 3))


def test_each_product_keeps_its_own_customer_limit_within_one_batch(engine: Engine) -> None:
    engine.set_stock(1, 10, max_per_customer=1)
    engine.set_stock(2, 10, max_per_customer=2)

    results = engine.reserve_across([r(1, 1, "ann"), r(2, 1, "ann"), r(1, 1, "ann"), r(2, 1, "ann"), r(2, 1, "ann")])

    assert [type(x).__name__ for x in results] == ["Hold", "Hold", "LimitExceeded", "Hold", "LimitExceeded"]
    refused = results[2]
    assert isinstance(refused, LimitExceeded)
    assert refused.product_id == 1
    assert isinstance(results[4], LimitExceeded)
    assert results[4].product_id == 2
    assert [engine.snapshot(p).held for p in (1, 2)] == [1, 2]


def test_a_product_that_does_not_exist_fails_only_its_own_reserves(engine: Engine) -> None:
    engine.set_stock(1, 10)
    engine.set_stock(3, 1)

    results = engine.reserve_across([r(1), r(2), r(3), r(2, 3), r(1), r(3)])

    assert [type(x).__name__ for x in results] == [
        "Hold",
        "ProductNotFound",
        "Hold",
        "ProductNotFound",
        "Hold",
        "OutOfStock",
    ]
    assert isinstance(results[3], ProductNotFound)
    assert results[3].product_id == 2
    assert isinstance(results[5], OutOfStock)
    assert [engine.snapshot(p).held for p in (1, 3)] == [2, 1]


def test_a_malformed_reserve_in_the_script_call_is_refused_alone(engine: Engine) -> None:
    one, two = same_slot_products(2)  # one call, on a cluster too
    engine.set_stock(one, 10)
    engine.set_stock(two, 10)
    requests = [calls.reserve_request(p, 1) for p in (one, two, one, two)]
    call = calls.reserve_batch(requests, 60_000)
    args = list(call.args)
    args[args.index(requests[1].ulid) - 1] = "1.5"  # product 2's first quantity, as no checked call sends it

    results = call.decode(engine._scripts["reserve_batch"](keys=call.keys, args=args))

    assert [type(x).__name__ for x in results] == ["Hold", "EngineError", "Hold", "Hold"]
    assert "invalid_request" in str(results[1])
    assert [engine.snapshot(p).held for p in (one, two)] == [2, 1]


def test_a_batch_names_each_product_once_with_its_reserves_together() -> None:
    requests = [calls.reserve_request(p, 1) for p in (7, 8, 7, 9, 8)]

    call = calls.reserve_batch(requests, 60_000)

    assert call.keys[::16] == ["fs:{7}:product", "fs:{8}:product", "fs:{9}:product"]
    assert call.args[:3] == [60_000, calls.REAP_BATCH, 3]
    ulids = [a for a in call.args if a in {q.ulid for q in requests}]
    assert ulids == [requests[i].ulid for i in (0, 2, 1, 4, 3)]  # grouped by product, in order within one


def test_products_are_grouped_by_their_cluster_hash_slot() -> None:
    a, b = same_slot_products(2)
    other = next(p for p in range(1, 1000) if product_slot(p) != product_slot(a))
    requests = [calls.reserve_request(p, 1) for p in (a, other, b, a)]

    assert calls.by_slot(requests) == [[0, 2, 3], [1]]


def test_on_a_cluster_each_hash_slot_is_one_script_call(
    redis_client: Any, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, c = same_slot_products(3)
    others = [p for p in range(1, 50) if product_slot(p) != product_slot(a)][:2]
    for product_id in (a, b, c, *others):
        engine.set_stock(product_id, 3)
    sent: list[list[int]] = []
    original = engine._run

    def counted(call: calls.Call[Any]) -> Any:
        if call.script == "reserve_batch":
            sent.append(sorted({int(k.split("{")[1].split("}")[0]) for k in call.keys}))
        return original(call)

    monkeypatch.setattr(engine, "_run", counted)

    results = engine.reserve_across([r(a), r(others[0]), r(b), r(c, 2), r(others[1]), r(a)])

    assert all(isinstance(x, Hold) for x in results)
    if isinstance(redis_client, RedisCluster):
        assert sorted(sent) == sorted([sorted([a, b, c]), [others[0]], [others[1]]])
    else:
        assert sent == [sorted([a, b, c, *others])]  # one Redis: one call for every product
    assert [engine.snapshot(p).held for p in (a, b, c)] == [2, 1, 2]


def test_concurrent_reserves_of_many_products_share_one_script_call(async_clients: ClientFactory) -> None:
    async def scenario(engine: AsyncEngine) -> None:
        products = list(range(1, 61))
        for product_id in products:
            await engine.set_stock(product_id, 2, max_per_customer=1)
        coalescer = engine._coalescer
        assert coalescer is not None
        send = coalescer._send
        batches: list[list[int]] = []

        async def counted(queue: int, requests: Any) -> Any:
            batches.append([q.product_id for q in requests])
            return await send(queue, requests)

        coalescer._send = counted
        # Each product: two buyers, and one of them twice (over the limit of 1).
        wanted = [(p, c) for p in products for c in ("ann", "bob", "ann")]

        results = await asyncio.gather(
            *(engine.reserve(p, 1, customer_id=c) for p, c in wanted), return_exceptions=True
        )

        kinds = [type(x).__name__ for x in results]
        assert kinds == ["Hold", "Hold", "LimitExceeded"] * len(products)
        for product_id in products:
            s = await engine.snapshot(product_id)
            assert (s.held, s.available) == (2, 0)
        assert sum(len(b) for b in batches) == len(wanted)
        assert len(batches) < len(wanted) // 2  # batches of many reserves, not one call per reserve
        if engine.cluster:  # a call reaches one hash slot
            assert all(len({product_slot(p) for p in batch}) == 1 for batch in batches)
        else:  # one Redis: one queue for every product
            assert max(len(set(batch)) for batch in batches) > 10

    run(async_clients, scenario)


def test_one_reserve_that_fails_in_a_shared_batch_fails_only_its_own_caller(async_clients: ClientFactory) -> None:
    async def scenario(engine: AsyncEngine) -> None:
        await engine.set_stock(1, 5)
        await engine.set_stock(3, 1)

        results = await asyncio.gather(
            *(engine.reserve(p, q) for p, q in ((1, 1), (2, 1), (3, 1), (1, 99), (3, 1), (1, 1))),
            return_exceptions=True,
        )

        kinds = [type(x).__name__ for x in results]
        assert kinds == ["Hold", "ProductNotFound", "Hold", "OutOfStock", "OutOfStock", "Hold"]
        assert not any(isinstance(x, EngineError) and type(x) is EngineError for x in results)
        assert (await engine.snapshot(1)).held == 2

    run(async_clients, scenario)


def test_async_reserve_across_answers_in_order(async_clients: ClientFactory) -> None:
    async def scenario(engine: AsyncEngine) -> None:
        await engine.set_stock(1, 1)
        await engine.set_stock(2, 1)

        results = await engine.reserve_across([r(2), r(1), r(2), r(3)])

        assert [type(x).__name__ for x in results] == ["Hold", "Hold", "OutOfStock", "ProductNotFound"]
        assert [x.product_id for x in results if isinstance(x, Hold)] == [2, 1]

    run(async_clients, scenario)
