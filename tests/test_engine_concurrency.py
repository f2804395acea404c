"""Exact counts under contention, on real Redis (and the cluster): never oversell, never below zero."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from engine import AsyncEngine, Engine
from engine.connection import connect, connect_async
from engine.exceptions import HoldAlreadyUsed, LimitExceeded, OutOfStock
from engine.types import Snapshot

THREADS = 80
STOCK = 100


@pytest.fixture
def pooled(real_redis: redis.Redis, redis_url: str) -> Iterator[Engine]:
    """An engine on a bounded blocking pool smaller than the number of threads."""
    client = connect(redis_url, max_connections=16)
    yield Engine(client)
    client.close()


def race(worker: Callable[[], None], threads: int = THREADS) -> list[BaseException]:
    """Start ``threads`` workers at once; return what they raised."""
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run() -> None:
        start.wait()
        try:
            worker()
        except BaseException as error:
            errors.append(error)

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return errors


class Sampler:
    """Takes snapshots while a race runs, to catch a counter that dips below zero even for a moment."""

    def __init__(self, engine: Engine, product_id: int) -> None:
        self.engine, self.product_id = engine, product_id
        self.samples: list[Snapshot] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.engine.snapshot(self.product_id))

    def __enter__(self) -> Sampler:
        self._thread.start()
        while not self.samples:  # sampling has begun before the race does
            time.sleep(0.001)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def reserve_until_sold_out(engine: Engine, holds: list[Any], customer_id: str | None = None) -> Callable[[], None]:
    def worker() -> None:
        while True:
            try:
                holds.append(engine.reserve(1, 1, customer_id=customer_id))
            except (OutOfStock, LimitExceeded):
                return

    return worker


def test_threads_racing_for_the_stock_hold_exactly_the_stock(pooled: Engine) -> None:
    pooled.set_stock(1, STOCK)
    holds: list[Any] = []

    with Sampler(pooled, 1) as sampler:
        errors = race(reserve_until_sold_out(pooled, holds))

    assert errors == []
    assert len(holds) == len({h.hold_id for h in holds}) == STOCK
    snap = pooled.snapshot(1)
    assert (snap.available, snap.held) == (0, STOCK)
    assert pooled.stats(1)["holds"] == STOCK
    assert pooled.stats(1)["out_of_stock"] == THREADS
    assert len(sampler.samples) > 1
    assert all(s.consistent for s in sampler.samples)


def test_threads_of_one_customer_hold_exactly_the_limit(pooled: Engine) -> None:
    pooled.set_stock(1, STOCK, max_per_customer=5)
    holds: list[Any] = []

    errors = race(reserve_until_sold_out(pooled, holds, customer_id="alice"), threads=64)

    assert errors == []
    assert len(holds) == 5
    assert pooled.snapshot(1).held == 5


def test_threads_converting_one_hold_make_exactly_one_order(pooled: Engine) -> None:
    pooled.set_stock(1, STOCK)
    hold = pooled.reserve(1, 3)
    orders: list[Any] = []

    def worker() -> None:
        with contextlib.suppress(HoldAlreadyUsed):
            orders.append(pooled.convert(hold.hold_id))

    assert race(worker, threads=64) == []
    assert len(orders) == 1
    snap = pooled.snapshot(1)
    assert (snap.held, snap.pending) == (0, 3)


def test_threads_paying_one_order_apply_exactly_one_payment(pooled: Engine) -> None:
    pooled.set_stock(1, STOCK)
    order = pooled.convert(pooled.reserve(1, 3).hold_id)
    results: list[Any] = []
    numbers = itertools.count()
    lock = threading.Lock()

    def worker() -> None:
        with lock:
            n = next(numbers)
        results.append(pooled.settle(order.order_id, f"txn-{n}", "success" if n % 2 else "failed"))

    assert race(worker, threads=64) == []
    assert sum(r.applied for r in results) == 1
    snap = pooled.snapshot(1)
    assert snap.pending == 0
    assert snap.sold in (0, 3)
    assert snap.consistent


def test_threads_racing_on_the_cluster_hold_exactly_the_stock(cluster_url: str) -> None:
    client = connect(cluster_url, cluster=True, max_connections=8)
    client.flushdb(target_nodes=RedisCluster.PRIMARIES)
    engine = Engine(client)
    try:
        engine.set_stock(1, STOCK)
        holds: list[Any] = []

        errors = race(reserve_until_sold_out(engine, holds), threads=64)

        assert errors == []
        assert len(holds) == STOCK
        assert engine.snapshot(1).held == STOCK
    finally:
        client.flushdb(target_nodes=RedisCluster.PRIMARIES)
        client.close()


async def burst(engine: AsyncEngine, reserves: int) -> tuple[list[Any], list[BaseException], list[Snapshot]]:
    samples: list[Snapshot] = []
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            samples.append(await engine.snapshot(1))
            await asyncio.sleep(0)

    sampler = asyncio.create_task(sample())
    results = await asyncio.gather(*(engine.reserve(1, 1) for _ in range(reserves)), return_exceptions=True)
    done.set()
    await sampler
    holds = [r for r in results if not isinstance(r, BaseException)]
    errors = [r for r in results if isinstance(r, BaseException)]
    return holds, errors, samples


def assert_exact_burst(result: tuple[list[Any], list[BaseException], list[Snapshot]], stock: int) -> None:
    holds, errors, samples = result
    assert [e for e in errors if not isinstance(e, OutOfStock)] == []
    assert len(holds) == stock
    assert len(errors) == 2_000 - stock
    assert all(s.consistent for s in samples)


def test_two_thousand_async_reserves_hold_exactly_the_stock(real_redis: redis.Redis, redis_url: str) -> None:
    async def main() -> tuple[list[Any], list[BaseException], list[Snapshot]]:
        client = connect_async(redis_url, max_connections=32)
        try:
            engine = AsyncEngine(client)
            await engine.set_stock(1, 1_500)
            result = await burst(engine, 2_000)
            assert (await engine.snapshot(1)).held == 1_500
            return result
        finally:
            await client.aclose()

    assert_exact_burst(asyncio.run(main()), 1_500)


def test_two_thousand_async_reserves_on_the_cluster_hold_exactly_the_stock(cluster_url: str) -> None:
    async def main() -> tuple[list[Any], list[BaseException], list[Snapshot]]:
        client = connect_async(cluster_url, cluster=True, max_connections=16)
        try:
            engine = AsyncEngine(client)
            await client.flushdb(target_nodes=client.get_primaries())
            await engine.set_stock(1, 1_500)
            result = await burst(engine, 2_000)
            assert (await engine.snapshot(1)).held == 1_500
            await client.flushdb(target_nodes=client.get_primaries())
            return result
        finally:
            await client.aclose()

    assert_exact_burst(asyncio.run(main()), 1_500)
