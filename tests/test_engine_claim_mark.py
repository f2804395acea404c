"""The claim store's completeness mark: while it names the server, a transaction id without a claim is new.

``AsyncEngine.vouch_claims`` sets it only when every id PostgreSQL records is claimed and Redis never evicts keys,
and makes it expire before the first of those claims; a mark another server wrote (a restart, a failover) vouches
for nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import fakeredis
import pytest
import redis

from engine import AsyncEngine, Engine, calls, new_id
from engine.aio import VOUCH_MARGIN_MS
from engine.connection import connect_async
from engine.exceptions import TransactionReused
from engine.keys import CLAIMS_COMPLETE_KEY, transaction_key

Scenario = Callable[[AsyncEngine], Awaitable[None]]


def on_redis(redis_url: str, scenario: Scenario) -> None:
    async def main() -> None:
        client = connect_async(redis_url)
        try:
            await scenario(AsyncEngine(client))
        finally:
            await client.aclose()

    asyncio.run(main())


def order() -> str:
    return new_id("order", 1)


def test_without_a_mark_a_new_claim_waits_for_postgresql(real_redis: redis.Redis, redis_url: str) -> None:
    async def scenario(engine: AsyncEngine) -> None:
        claim = await engine.claim_transaction("t-new", order())

        assert claim.new
        assert not claim.confirmed

    on_redis(redis_url, scenario)


def test_a_vouched_store_confirms_a_new_claim_at_once(real_redis: redis.Redis, redis_url: str) -> None:
    async def scenario(engine: AsyncEngine) -> None:
        first = order()
        await engine.claim_transaction("t-1", first)

        lifetime = await engine.vouch_claims(["t-1"])

        assert lifetime is not None
        assert lifetime <= calls.TRANSACTION_RETENTION_MS - VOUCH_MARGIN_MS
        assert real_redis.get(CLAIMS_COMPLETE_KEY) == real_redis.info("server")["run_id"].encode()
        claim = await engine.claim_transaction("t-2", order())
        assert (claim.new, claim.confirmed) == (True, True)
        with pytest.raises(TransactionReused):
            await engine.claim_transaction("t-1", order())  # a claim still refuses another order

    on_redis(redis_url, scenario)


def test_an_id_postgresql_records_but_redis_forgot_leaves_the_store_unvouched(
    real_redis: redis.Redis, redis_url: str
) -> None:
    async def scenario(engine: AsyncEngine) -> None:
        await engine.claim_transaction("t-kept", order())

        assert await engine.vouch_claims(["t-kept", "t-forgotten"]) is None
        assert real_redis.exists(CLAIMS_COMPLETE_KEY) == 0
        claim = await engine.claim_transaction("t-forgotten", order())
        assert not claim.confirmed  # so the webhook asks PostgreSQL, which knows it

    on_redis(redis_url, scenario)


def test_the_mark_expires_before_the_shortest_claim_it_vouches_for(real_redis: redis.Redis, redis_url: str) -> None:
    async def scenario(engine: AsyncEngine) -> None:
        await engine.claim_transaction("t-old", order())
        await engine.claim_transaction("t-young", order())
        real_redis.pexpire(transaction_key("t-old"), VOUCH_MARGIN_MS + 30_000)  # claimed almost a week ago

        lifetime = await engine.vouch_claims(["t-old", "t-young"])

        assert lifetime is not None
        assert lifetime <= 30_000
        assert 0 < real_redis.pttl(CLAIMS_COMPLETE_KEY) <= 30_000
        real_redis.pexpire(transaction_key("t-old"), VOUCH_MARGIN_MS)  # too close to its end to vouch for
        real_redis.delete(CLAIMS_COMPLETE_KEY)
        assert await engine.vouch_claims(["t-old", "t-young"]) is None

    on_redis(redis_url, scenario)


def test_a_mark_another_server_wrote_vouches_for_nothing(real_redis: redis.Redis, redis_url: str) -> None:
    async def scenario(engine: AsyncEngine) -> None:
        real_redis.set(CLAIMS_COMPLETE_KEY, "0" * 40)  # inherited from before a restart or a failover

        claim = await engine.claim_transaction("t-after-failover", order())

        assert not claim.confirmed

    on_redis(redis_url, scenario)


def test_keys_redis_may_evict_are_never_vouched_for(
    real_redis: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(engine: AsyncEngine) -> None:
        info = engine.redis.info

        async def evicting(section: str | None = None, *args: Any) -> Any:
            found = await info(section, *args)
            return {**found, "maxmemory_policy": "volatile-lru"} if section == "memory" else found

        monkeypatch.setattr(engine.redis, "info", evicting)

        assert await engine.vouch_claims([]) is None
        assert real_redis.exists(CLAIMS_COMPLETE_KEY) == 0

    on_redis(redis_url, scenario)


def test_on_a_cluster_the_store_is_never_vouched_for_and_claims_name_one_key(cluster_url: str) -> None:
    async def main() -> None:
        client = connect_async(cluster_url, cluster=True)
        try:
            engine = AsyncEngine(client)
            assert await engine.vouch_claims([]) is None
            claim = await engine.claim_transaction(f"t-cluster-{new_id('order', 1)}", order())
            assert not claim.confirmed
        finally:
            await client.aclose()

    asyncio.run(main())
    assert calls.claim_transaction("t", order()).keys == [transaction_key("t")]
    assert calls.claim_transaction("t", order(), marked=True).keys == [transaction_key("t"), CLAIMS_COMPLETE_KEY]


def test_where_the_server_will_not_say_who_it_is_a_mark_vouches_for_nothing() -> None:
    engine = Engine(fakeredis.FakeRedis())  # fakeredis refuses INFO inside a script
    engine.redis.set(CLAIMS_COMPLETE_KEY, "anything")

    claim = engine.claim_transaction("t-fake", order())

    assert (claim.new, claim.confirmed) == (True, False)
