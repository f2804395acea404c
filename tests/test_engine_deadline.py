"""A hung Redis: every asyncio engine call gives up at its deadline, wherever it waits, and a retry replays.

The Redis is real, behind a proxy that can be stopped like a ``kill -STOP``-ed server (tests/support/stoppable.py).
As in the API, the client has no socket timeout and its pool waits far past the deadline, so that only the
deadline can end a wait; the error says it did. A guard turns a call that ignored its deadline into a
failure instead of a hang.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis

from engine import AsyncEngine, Engine
from engine.aio import deadline
from engine.connection import connect_async
from engine.exceptions import EngineUnavailable
from engine.scripts import NAMES, source
from engine.types import Cancellation, Hold, Order, Settlement
from tests.support.stoppable import StoppableRedis

DEADLINE = 0.3
PATIENT = 30.0
"""The pool's own timeout, and the guard's."""
GAVE_UP = f"Redis did not answer within {DEADLINE:g} s"
REPLAY_DEADLINE = 2.0
"""The replay tests need the call on the wire before its deadline: 2 s, so that an event loop starved by a busy
machine cannot cancel the call before it is sent (with 0.3 s it sometimes was, and never ran at all)."""

Scenario = Callable[[AsyncEngine, StoppableRedis], Awaitable[None]]


def run(redis_url: str, scenario: Scenario, **settings: Any) -> None:
    async def main() -> None:
        async with StoppableRedis(redis_url) as server:
            client = connect_async(server.url, max_connections=4, pool_timeout=PATIENT, socket_timeout=None)
            try:
                async with asyncio.timeout(PATIENT):
                    await scenario(AsyncEngine(client, **settings), server)
            finally:
                await client.aclose()
                await client.connection_pool.disconnect()

    asyncio.run(main())


async def settled(condition: Callable[[], bool], what: str) -> None:
    """Wait (without blocking the loop the proxy runs in) until ``condition`` holds."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.02)


def test_every_call_gives_up_at_the_deadline_while_redis_hangs_queued_ones_too(
    real_redis: redis.Redis, redis_url: str
) -> None:
    async def scenario(engine: AsyncEngine, server: StoppableRedis) -> None:
        await engine.set_stock(1, 100)
        await engine.set_stock(2, 100)
        server.stop()
        first = asyncio.ensure_future(engine.reserve(1, 1))  # its batch leaves, alone in its round trip, and hangs
        await asyncio.sleep(0.05)

        results = await asyncio.gather(
            first,
            *(engine.reserve(1, 1) for _ in range(4)),  # queued in the coalescer behind that batch
            engine.snapshot(2),  # queued in the pipeliner behind that round trip
            engine.reserve(2, 1),  # a batch of its own, queued in the pipeliner
            *(engine.product_ids() for _ in range(8)),  # plain commands: three hang, five wait for the pool
            return_exceptions=True,
        )

        assert [type(r) for r in results] == [EngineUnavailable] * 15, results
        assert {str(r) for r in results} == {GAVE_UP}
        server.cont()
        assert (await engine.snapshot(2)).total == 100  # answering again once Redis is

    run(redis_url, scenario, timeout=DEADLINE)


def test_a_reserve_whose_caller_gave_up_is_not_sent_with_the_next_batch(
    real_redis: redis.Redis, redis_url: str
) -> None:
    async def scenario(engine: AsyncEngine, server: StoppableRedis) -> None:
        await engine.set_stock(1, 100)
        server.stop()
        first = asyncio.ensure_future(engine.reserve(1, 1, customer_id="first"))
        await asyncio.sleep(0.05)  # its batch is out
        queued = [asyncio.ensure_future(engine.reserve(1, 1, customer_id=f"q{i}")) for i in range(4)]
        await asyncio.sleep(0.05)
        queued[1].cancel()  # gives up while queued (a client gone, a deadline passed)
        server.cont()

        results = await asyncio.gather(first, *queued, return_exceptions=True)

        assert isinstance(results[2], asyncio.CancelledError)
        assert sorted(r.customer_id for r in results if isinstance(r, Hold)) == ["first", "q0", "q2", "q3"]
        assert (await engine.snapshot(1)).held == 4

    run(redis_url, scenario)


def test_a_call_whose_caller_gave_up_is_not_sent_with_the_next_round_trip(
    real_redis: redis.Redis, redis_url: str
) -> None:
    async def scenario(engine: AsyncEngine, server: StoppableRedis) -> None:
        for product_id in range(1, 6):
            await engine.set_stock(product_id, 10)
        server.stop()
        first = asyncio.ensure_future(engine.snapshot(1))  # its round trip is out
        await asyncio.sleep(0.05)
        queued = [asyncio.ensure_future(engine.reserve(p, 1)) for p in range(2, 6)]
        await asyncio.sleep(0.05)
        queued[1].cancel()
        server.cont()

        results = await asyncio.gather(first, *queued, return_exceptions=True)

        assert isinstance(results[2], asyncio.CancelledError)
        assert [(await engine.snapshot(p)).held for p in range(2, 6)] == [1, 0, 1, 1]

    run(redis_url, scenario, coalesce=1)


def test_a_call_already_past_its_deadline_is_not_sent(real_redis: redis.Redis, redis_url: str) -> None:
    async def scenario(engine: AsyncEngine, server: StoppableRedis) -> None:
        await engine.set_stock(1, 10)

        spent = deadline(asyncio.get_running_loop().time())  # a request that spent its time before its engine call
        with spent, pytest.raises(EngineUnavailable, match=GAVE_UP):
            await engine.reserve(1, 1)

        assert (await engine.snapshot(1)).held == 0

    run(redis_url, scenario, timeout=DEADLINE, coalesce=1)  # a direct call: it would be on the wire at once


def test_a_batch_is_not_bound_by_the_deadline_of_the_caller_that_started_its_sender(
    real_redis: redis.Redis, redis_url: str
) -> None:
    async def scenario(engine: AsyncEngine, server: StoppableRedis) -> None:
        await engine.set_stock(1, 100)
        server.stop()
        with deadline(asyncio.get_running_loop().time() + 0.1):
            first = asyncio.ensure_future(engine.reserve(1, 1, customer_id="first"))  # starts the batch sender
        await asyncio.sleep(0.02)
        later = [asyncio.ensure_future(engine.reserve(1, 1, customer_id=f"later{i}")) for i in range(3)]
        await asyncio.sleep(0.2)  # the first caller's deadline has passed; the later callers have none
        server.cont()

        results = await asyncio.gather(first, *later, return_exceptions=True)

        assert isinstance(results[0], EngineUnavailable)
        assert [getattr(r, "customer_id", r) for r in results[1:]] == ["later0", "later1", "later2"]

    run(redis_url, scenario)


Call = Callable[[AsyncEngine], Awaitable[Any]]


def _retries() -> list[tuple[str, Callable[[Engine], Call], Callable[[Engine], bool], Callable[[Any], None]]]:
    """(name, arrange: the call to make, ran: whether it took effect, check of the retry's answer)."""

    def reserve(engine: Engine) -> Call:
        return lambda e: e.reserve(1, 2, customer_id="alice", idempotency_key="cart-1")

    def convert(engine: Engine) -> Call:
        hold = engine.reserve(1, 2)
        order_id = hold.hold_id.replace("h", "o", 1)  # any order id, chosen before the call
        return lambda e: e.convert(hold.hold_id, order_id=order_id)

    def settle(engine: Engine) -> Call:
        order = engine.convert(engine.reserve(1, 2).hold_id)
        return lambda e: e.settle(order.order_id, "txn-1", "success")

    def release(engine: Engine) -> Call:
        hold = engine.reserve(1, 2)
        return lambda e: e.release(hold.hold_id)

    def cancel(engine: Engine) -> Call:
        order = engine.convert(engine.reserve(1, 2).hold_id)
        return lambda e: e.cancel(order.order_id)

    def counts(engine: Engine) -> tuple[int, int, int]:
        s = engine.snapshot(1)
        return s.held, s.pending, s.sold

    def reserved(answer: Any) -> None:
        assert isinstance(answer, Hold)
        assert (answer.quantity, answer.customer_id, answer.status) == (2, "alice", "active")

    def converted(answer: Any) -> None:
        assert isinstance(answer, Order)
        assert answer.status == "pending"

    def paid(answer: Any) -> None:
        assert isinstance(answer, Settlement)
        assert (answer.duplicate, answer.applied, answer.order.status) == (True, True, "paid")

    def released(answer: Any) -> None:
        assert isinstance(answer, Hold)
        assert answer.status == "released"

    def cancelled(answer: Any) -> None:
        assert isinstance(answer, Cancellation)
        assert (answer.changed, answer.order.status) == (False, "cancelled")

    return [
        ("reserve with an idempotency key", reserve, lambda e: counts(e) == (2, 0, 0), reserved),
        ("convert with an order id", convert, lambda e: counts(e) == (0, 2, 0), converted),
        ("settle a transaction", settle, lambda e: counts(e) == (0, 0, 2), paid),
        ("release", release, lambda e: counts(e) == (0, 0, 0), released),
        ("cancel", cancel, lambda e: counts(e) == (0, 0, 0), cancelled),
    ]


@pytest.mark.parametrize(("name", "arrange", "ran", "check"), _retries(), ids=[r[0] for r in _retries()])
def test_a_call_that_ran_after_its_caller_gave_up_is_replayed_by_a_retry(
    real_redis: redis.Redis,
    redis_url: str,
    name: str,
    arrange: Callable[[Engine], Call],
    ran: Callable[[Engine], bool],
    check: Callable[[Any], None],
) -> None:
    direct = Engine(real_redis)  # behind the proxy's back
    direct.set_stock(1, 10)
    # As on any server that has served a sale; else the late call would meet NOSCRIPT, and not run. Nothing
    # flushes them meanwhile: a test that does runs on a server of its own (the server_wide marker, conftest.py).
    for script in NAMES:
        real_redis.script_load(source(script))
    call = arrange(direct)

    async def scenario(engine: AsyncEngine, server: StoppableRedis) -> None:
        await engine.snapshot(1)  # a connection is open, as under load
        server.stop()
        with pytest.raises(EngineUnavailable, match=f"Redis did not answer within {REPLAY_DEADLINE:g} s"):
            await call(engine)
        server.cont()
        await settled(lambda: ran(direct), f"the {name} sent before the deadline ran")

        check(await call(engine))

        assert ran(direct), "the retry took effect a second time"

    run(redis_url, scenario, timeout=REPLAY_DEADLINE)
