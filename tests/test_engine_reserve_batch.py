"""reserve_batch: several reserves of one product in one script call, and the asyncio engine's coalescing.

The reserve contract (tests/test_engine_stock.py) runs again here with every reserve sent through
``reserve_many``, on fakeredis, real Redis and a Redis Cluster; then what only a batch can show.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from engine import AsyncEngine, Engine, calls
from engine.connection import connect_async
from engine.exceptions import (
    EngineError,
    EngineUnavailable,
    LimitExceeded,
    OutOfStock,
    ProductNotFound,
    SaleNotActive,
)
from engine.types import Hold, ReserveRequest
from tests.test_engine_async import ClientFactory, async_clients, run
from tests.test_engine_stock import (
    test_a_reserve_replay_counts_expired_units_as_available,
    test_an_idempotency_key_replays_only_for_the_customer_who_used_it,
    test_an_idempotency_key_stored_before_keys_were_scoped_replays_only_for_its_customer,
    test_expired_holds_free_their_units_for_reserve_without_a_reaper,
    test_reserve_accepts_the_largest_quantity,
    test_reserve_refuses_a_hold_id_of_another_product,
    test_reserve_refuses_after_the_sale_ends,
    test_reserve_refuses_an_unknown_product,
    test_reserve_refuses_before_the_sale_starts,
    test_reserve_refuses_more_than_the_customer_limit,
    test_reserve_refuses_when_sold_out,
    test_reserve_rejects_empty_or_overlong_text,
    test_reserve_rejects_quantities_out_of_bounds,
    test_reserve_replay_reports_what_became_of_the_hold,
    test_reserve_succeeds_inside_the_sale_window,
    test_reserve_takes_units_into_an_active_hold,
    test_reserve_with_the_same_hold_id_returns_the_first_hold,
    test_reserve_with_the_same_idempotency_key_returns_the_first_hold,
)

REUSED_CONTRACT = (
    async_clients,
    test_a_reserve_replay_counts_expired_units_as_available,
    test_an_idempotency_key_replays_only_for_the_customer_who_used_it,
    test_an_idempotency_key_stored_before_keys_were_scoped_replays_only_for_its_customer,
    test_expired_holds_free_their_units_for_reserve_without_a_reaper,
    test_reserve_accepts_the_largest_quantity,
    test_reserve_refuses_a_hold_id_of_another_product,
    test_reserve_refuses_after_the_sale_ends,
    test_reserve_refuses_an_unknown_product,
    test_reserve_refuses_before_the_sale_starts,
    test_reserve_refuses_more_than_the_customer_limit,
    test_reserve_refuses_when_sold_out,
    test_reserve_rejects_empty_or_overlong_text,
    test_reserve_rejects_quantities_out_of_bounds,
    test_reserve_replay_reports_what_became_of_the_hold,
    test_reserve_succeeds_inside_the_sale_window,
    test_reserve_takes_units_into_an_active_hold,
    test_reserve_with_the_same_hold_id_returns_the_first_hold,
    test_reserve_with_the_same_idempotency_key_returns_the_first_hold,
)
"""Imported so that pytest collects them in this module, where ``make_engine`` batches every reserve."""


class BatchingEngine(Engine):
    """An engine whose every reserve is a batch of one: the reserve contract, checked on reserve_batch."""

    def reserve(
        self,
        product_id: int,
        quantity: int,
        *,
        customer_id: str | None = None,
        hold_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Hold:
        request = ReserveRequest(quantity, customer_id, hold_id, idempotency_key)
        [result] = self.reserve_many(product_id, [request])
        if isinstance(result, Exception):
            raise result
        return result


@pytest.fixture
def make_engine(redis_client: Any) -> Callable[..., Engine]:
    def make(**settings: int) -> Engine:
        return BatchingEngine(redis_client, **settings)

    return make


def test_reserve_many_answers_each_request_as_if_made_in_turn(engine: Engine) -> None:
    engine.set_stock(1, 5)

    first, second, third = engine.reserve_many(1, [ReserveRequest(2), ReserveRequest(2), ReserveRequest(2)])

    assert isinstance(first, Hold)
    assert (first.quantity, first.available) == (2, 3)
    assert isinstance(second, Hold)
    assert second.available == 1
    assert isinstance(third, OutOfStock)
    assert (third.requested, third.available) == (2, 1)
    assert engine.snapshot(1).held == 4
    assert engine.stats(1)["holds"] == 2
    assert engine.stats(1)["out_of_stock"] == 1


def test_reserve_many_counts_the_customer_limit_across_the_batch(engine: Engine) -> None:
    engine.set_stock(1, 10, max_per_customer=2)

    results = engine.reserve_many(
        1,
        [ReserveRequest(1, "alice"), ReserveRequest(1, "bob"), ReserveRequest(1, "alice"), ReserveRequest(1, "alice")],
    )

    assert [type(r) for r in results] == [Hold, Hold, Hold, LimitExceeded]
    assert engine.snapshot(1).held == 3


def test_reserve_many_replays_an_idempotency_key_repeated_within_the_batch(engine: Engine) -> None:
    engine.set_stock(1, 10)

    first, again = engine.reserve_many(
        1, [ReserveRequest(1, idempotency_key="k"), ReserveRequest(1, idempotency_key="k")]
    )

    assert isinstance(first, Hold)
    assert isinstance(again, Hold)
    assert again.hold_id == first.hold_id
    assert engine.snapshot(1).held == 1


def test_reserve_many_keeps_one_idempotency_key_of_two_customers_apart_within_the_batch(engine: Engine) -> None:
    engine.set_stock(1, 10)

    requests = [ReserveRequest(1, "alice", idempotency_key="k"), ReserveRequest(2, "mallory", idempotency_key="k")]
    alice, mallory, again = engine.reserve_many(1, [*requests, requests[0]])

    assert isinstance(alice, Hold)
    assert isinstance(mallory, Hold)
    assert isinstance(again, Hold)
    assert (mallory.customer_id, mallory.quantity) == ("mallory", 2)
    assert mallory.hold_id != alice.hold_id == again.hold_id
    assert engine.snapshot(1).held == 3


def test_reserve_many_refuses_every_request_for_an_unknown_product(engine: Engine) -> None:
    results = engine.reserve_many(9, [ReserveRequest(1), ReserveRequest(2)])

    assert [type(r) for r in results] == [ProductNotFound, ProductNotFound]


def test_reserve_many_refuses_every_request_outside_the_sale(engine: Engine) -> None:
    engine.set_stock(1, 10, starts_at_ms=4_102_444_800_000)  # 2100

    results = engine.reserve_many(1, [ReserveRequest(1), ReserveRequest(1)])

    assert [type(r) for r in results] == [SaleNotActive, SaleNotActive]
    assert engine.snapshot(1).available == 10


def test_reserve_many_checks_every_request_before_sending_any(engine: Engine) -> None:
    engine.set_stock(1, 10)

    with pytest.raises(ValueError, match="quantity"):
        engine.reserve_many(1, [ReserveRequest(1), ReserveRequest(0)])

    assert engine.snapshot(1).held == 0


def test_reserve_many_of_nothing_changes_nothing(engine: Engine) -> None:
    engine.set_stock(1, 10)

    assert engine.reserve_many(1, []) == []
    assert engine.snapshot(1).available == 10


def test_concurrent_async_reserves_share_script_calls_and_hold_exactly_the_stock(
    async_clients: ClientFactory,
) -> None:
    async def scenario(engine: AsyncEngine) -> None:
        await engine.set_stock(1, 150)
        batches: list[int] = []
        send = engine._reserve_batch

        async def counted(product_id: int, requests: Any) -> Any:
            batches.append(len(requests))
            return await send(product_id, requests)

        engine._reserve_batch = counted  # type: ignore[method-assign]
        coalescer = engine._coalescer
        assert coalescer is not None
        coalescer._send = counted

        results = await asyncio.gather(
            *(engine.reserve(1, 1, customer_id=f"c{i}") for i in range(200)), return_exceptions=True
        )

        holds = [r for r in results if isinstance(r, Hold)]
        assert len(holds) == 150
        assert all(isinstance(r, OutOfStock) for r in results if not isinstance(r, Hold))
        assert len({h.hold_id for h in holds}) == 150
        assert sum(batches) == 200
        assert len(batches) < 200 / 4  # one call carried many reserves
        assert (await engine.snapshot(1)).held == 150

    run(async_clients, scenario)


def test_async_reserve_many_answers_in_order(async_clients: ClientFactory) -> None:
    async def scenario(engine: AsyncEngine) -> None:
        await engine.set_stock(1, 1)

        first, second = await engine.reserve_many(1, [ReserveRequest(1, "a"), ReserveRequest(1, "b")])

        assert isinstance(first, Hold)
        assert first.customer_id == "a"
        assert isinstance(second, OutOfStock)

    run(async_clients, scenario)


def test_coalescing_off_sends_each_reserve_alone(async_clients: ClientFactory) -> None:
    async def main() -> None:
        client = async_clients()
        try:
            engine = AsyncEngine(client, coalesce=1)
            await engine.set_stock(1, 2)
            results = await asyncio.gather(*(engine.reserve(1, 1) for _ in range(3)), return_exceptions=True)
            assert [type(r) for r in results].count(Hold) == 2
        finally:
            await client.aclose()

    asyncio.run(main())


def test_coalesced_reserves_all_hear_that_redis_is_unavailable() -> None:
    async def main() -> list[Any]:
        client = connect_async("redis://127.0.0.1:1/0", pool_timeout=1.0)  # nothing listens on port 1
        try:
            engine = AsyncEngine(client)
            return await asyncio.gather(*(engine.reserve(1, 1) for _ in range(5)), return_exceptions=True)
        finally:
            await client.aclose()

    results = asyncio.run(main())

    assert [type(r) for r in results] == [EngineUnavailable] * 5


def test_a_cancelled_reserve_leaves_the_others_of_its_batch_answered(async_clients: ClientFactory) -> None:
    async def scenario(engine: AsyncEngine) -> None:
        await engine.set_stock(1, 10)
        tasks = [asyncio.ensure_future(engine.reserve(1, 1)) for _ in range(5)]
        await asyncio.sleep(0)  # all five queued, the first batch on its way
        tasks[2].cancel()

        results = await asyncio.gather(*tasks, return_exceptions=True)

        assert isinstance(results[2], asyncio.CancelledError)
        assert all(isinstance(r, Hold) for i, r in enumerate(results) if i != 2)
        snapshot = await engine.snapshot(1)
        assert snapshot.held in (4, 5)  # the cancelled caller's hold may have been made: it lapses unclaimed
        assert snapshot.consistent

    run(async_clients, scenario)


def let_any_text_through(monkeypatch: pytest.MonkeyPatch) -> None:
    """Take away the engine's own text check, as a caller whose validation has a gap would."""
    monkeypatch.setattr(calls, "_check_text", lambda value, name, limit: value or "")


def test_one_reserve_that_cannot_be_encoded_fails_alone_beside_fifty_good_ones_of_its_batch(
    async_clients: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    let_any_text_through(monkeypatch)

    async def scenario(engine: AsyncEngine) -> None:
        await engine.set_stock(1, 100)
        batches: list[int] = []
        coalescer = engine._coalescer
        assert coalescer is not None
        send = coalescer._send

        async def counted(product_id: int, requests: Any) -> Any:
            batches.append(len(requests))
            return await send(product_id, requests)

        coalescer._send = counted
        customers = [f"c{i}" for i in range(50)]
        customers.insert(25, "c-\ud800")

        results = await asyncio.gather(
            *(engine.reserve(1, 1, customer_id=c) for c in customers), return_exceptions=True
        )

        assert isinstance(results[25], UnicodeEncodeError)
        assert [r.customer_id for r in results if isinstance(r, Hold)] == customers[:25] + customers[26:]
        assert batches == [50]  # the good ones went together, in one script call
        assert (await engine.snapshot(1)).held == 50

    run(async_clients, scenario)


def test_an_unreadable_answer_in_a_batch_fails_only_its_own_caller() -> None:
    requests = [calls.reserve_request(1, 1, customer_id=f"c{i}") for i in range(3)]
    call = calls.reserve_batch(requests, 60_000)

    def ok(request: calls.PreparedReserve) -> list[bytes]:
        return [b"ok", request.ulid.encode(), b"1", b"99000", b"a", b"", request.customer.encode(), b"7"]

    results = call.decode([ok(requests[0]), [b"ok"], ok(requests[2])])

    assert [type(r) for r in results] == [Hold, EngineError, Hold]
    assert [r.customer_id for r in results if isinstance(r, Hold)] == ["c0", "c2"]
