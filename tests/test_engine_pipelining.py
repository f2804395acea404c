"""Concurrent script calls on different products share pipelined round trips (engine.pipelining)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
from redis.exceptions import ResponseError

from engine import AsyncEngine, calls
from engine.connection import connect_async
from engine.exceptions import EngineUnavailable, ProductNotFound
from engine.pipelining import Pipeliner
from engine.types import Hold

ClientFactory = Callable[[], Any]


@pytest.fixture(params=["fakeredis", "redis"])
def async_clients(request: pytest.FixtureRequest) -> Iterator[ClientFactory]:
    if request.param == "fakeredis":
        server = fakeredis.FakeServer()
        yield lambda: fakeredis.FakeAsyncRedis(server=server)
    else:
        request.getfixturevalue("real_redis")  # flushed before and after
        url = request.getfixturevalue("redis_url")
        yield lambda: connect_async(url)


def count_trips(client: Any) -> list[int]:
    """Record the number of commands of every pipeline the client sends."""
    sizes: list[int] = []
    make = client.pipeline

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = make(*args, **kwargs)
        execute = pipe.execute

        async def counted(*a: Any, **kw: Any) -> Any:
            sizes.append(len(pipe.command_stack))
            return await execute(*a, **kw)

        pipe.execute = counted
        return pipe

    client.pipeline = pipeline
    return sizes


def test_reserves_of_many_products_sent_alone_share_round_trips_and_each_gets_its_hold(
    async_clients: ClientFactory,
) -> None:
    async def main() -> None:
        client = async_clients()
        engine = AsyncEngine(client, coalesce=1)  # coalesced, they share a script call (test_engine_reserve_across)
        for product_id in range(1, 101):
            await engine.set_stock(product_id, 1)
        trips = count_trips(client)

        holds = await asyncio.gather(*(engine.reserve(p, 1, customer_id=f"c{p}") for p in range(1, 101)))

        assert [h.product_id for h in holds] == list(range(1, 101))
        assert [(await engine.snapshot(p)).held for p in range(1, 101)] == [1] * 100
        assert trips
        assert max(trips) > 1
        assert sum(trips) == 99
        await client.aclose()

    asyncio.run(main())


def test_a_call_refused_inside_a_shared_trip_fails_alone(async_clients: ClientFactory) -> None:
    async def main() -> None:
        client = async_clients()
        echo = client.register_script("return ARGV[1]")
        boom = client.register_script("return redis.error_reply('boom ' .. ARGV[1])")
        pipeliner = Pipeliner(client)

        results = await asyncio.gather(
            *(pipeliner.call(boom if i % 3 == 0 else echo, [], [i]) for i in range(9)),
            return_exceptions=True,
        )

        for i, result in enumerate(results):
            if i % 3 == 0:
                assert isinstance(result, ResponseError)
                assert f"boom {i}" in str(result)
            else:
                assert result == str(i).encode()
        await client.aclose()

    asyncio.run(main())


def test_engine_refusals_in_a_shared_trip_reach_only_their_caller(async_clients: ClientFactory) -> None:
    async def main() -> None:
        client = async_clients()
        engine = AsyncEngine(client)
        await engine.set_stock(1, 10)
        await engine.set_stock(3, 10)

        results = await asyncio.gather(*(engine.reserve(p, 1) for p in (1, 2, 3, 4)), return_exceptions=True)

        assert [type(r).__name__ for r in results] == ["Hold", "ProductNotFound", "Hold", "ProductNotFound"]
        assert isinstance(results[1], ProductNotFound)
        assert results[1].product_id == 2
        await client.aclose()

    asyncio.run(main())


@pytest.mark.server_wide
def test_calls_queued_after_a_script_flush_load_their_script_again(real_redis: Any, real_redis_url: str) -> None:
    async def main() -> None:
        client = connect_async(real_redis_url)
        engine = AsyncEngine(client)
        for product_id in range(1, 21):
            await engine.set_stock(product_id, 5)
        await client.script_flush()

        holds = await asyncio.gather(*(engine.reserve(p, 2) for p in range(1, 21)))

        assert len({h.hold_id for h in holds}) == 20
        assert [(await engine.snapshot(p)).available for p in range(1, 21)] == [3] * 20
        await client.aclose()

    asyncio.run(main())


def test_every_caller_of_a_trip_hears_that_redis_is_unavailable() -> None:
    async def main() -> None:
        client = connect_async("redis://127.0.0.1:1/0")  # nothing listens there
        engine = AsyncEngine(client)

        results = await asyncio.gather(*(engine.reserve(p, 1) for p in range(1, 11)), return_exceptions=True)

        assert all(isinstance(r, EngineUnavailable) for r in results), results
        await client.aclose()

    asyncio.run(main())


def test_a_cancelled_caller_leaves_the_rest_of_its_trip_answered(async_clients: ClientFactory) -> None:
    async def main() -> None:
        client = async_clients()
        engine = AsyncEngine(client)
        for product_id in range(1, 11):
            await engine.set_stock(product_id, 1)

        calls = [asyncio.ensure_future(engine.reserve(p, 1)) for p in range(1, 11)]
        await asyncio.sleep(0)  # the first call is in flight, the others queued
        calls[5].cancel()
        results = await asyncio.gather(*calls, return_exceptions=True)

        assert isinstance(results[5], asyncio.CancelledError)
        assert all(r.product_id == p for p, r in zip(range(1, 11), results, strict=True) if p != 6)
        await client.aclose()

    asyncio.run(main())


def test_pipeline_1_sends_every_call_alone(async_clients: ClientFactory) -> None:
    async def main() -> None:
        client = async_clients()
        engine = AsyncEngine(client, pipeline=1)
        for product_id in range(1, 11):
            await engine.set_stock(product_id, 1)
        trips = count_trips(client)

        await asyncio.gather(*(engine.reserve(p, 1) for p in range(1, 11)))

        assert trips == []
        await client.aclose()

    asyncio.run(main())


def test_one_call_that_cannot_be_encoded_fails_alone_beside_fifty_good_ones_of_its_trip(
    async_clients: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Take away the engine's own text check, as a caller whose validation has a gap would.
    monkeypatch.setattr(calls, "_check_text", lambda value, name, limit: value or "")

    async def main() -> None:
        client = async_clients()
        engine = AsyncEngine(client, coalesce=1)  # every reserve its own script call, sharing round trips
        for product_id in range(1, 52):
            await engine.set_stock(product_id, 1)
        trips = count_trips(client)
        customers = [f"c{p}" for p in range(1, 52)]
        customers[25] = "c-\ud800"

        first, *results = await asyncio.gather(
            engine.snapshot(1),  # goes alone: the 51 reserves queue behind it and leave as one trip
            *(engine.reserve(p, 1, customer_id=c) for p, c in zip(range(1, 52), customers, strict=True)),
            return_exceptions=True,
        )

        assert first.product_id == 1  # type: ignore[union-attr]
        assert isinstance(results[25], UnicodeEncodeError)
        holds = [r for r in results if isinstance(r, Hold)]
        assert [h.customer_id for h in holds] == customers[:25] + customers[26:]
        assert trips == [50]
        assert [(await engine.snapshot(p)).held for p in range(1, 52)] == [1] * 25 + [0] + [1] * 25
        await client.aclose()

    asyncio.run(main())
