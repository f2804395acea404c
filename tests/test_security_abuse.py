"""Abuse: one customer cannot beat the per-customer limit with concurrency, and one address flooding the hold
endpoint is held to the per-client rate limit, counted in Redis across every API process."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa

import api.ratelimit
import engine.connection
from api.app import create_app
from engine import Engine
from engine.keys import product_keys
from shared.settings import Settings
from tests.support.api import assert_problem, make_settings
from tests.support.clock import FrozenClock, freeze_rate_limit_clock

pytestmark = pytest.mark.anyio

LIMIT = 10


@asynccontextmanager
async def serving(settings: Settings, address: str = "203.0.113.7") -> AsyncIterator[httpx.AsyncClient]:
    """The app, with requests coming from ``address``."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield http


async def holds(http: httpx.AsyncClient, count: int, **body: Any) -> Counter[str]:
    answers = await asyncio.gather(
        *(http.post("/api/holds", json={"product_id": 1, "quantity": 1, **body}) for _ in range(count))
    )
    return Counter(f"{r.status_code} {r.json().get('code', '')}".strip() for r in answers)


@pytest.fixture
def settings(api_settings: Settings, real_redis: redis.Redis, db: sa.Engine) -> Settings:
    return api_settings


async def test_one_customer_gets_exactly_the_limit_from_100_concurrent_holds(
    settings: Settings, engine_sync: Engine, real_redis: redis.Redis
) -> None:
    engine_sync.set_stock(1, 1000, max_per_customer=3)
    async with serving(settings) as http:
        answers = await holds(http, 100, customer_id="greedy")
        others = await holds(http, 5, customer_id="someone-else")

    assert answers == {"201": 3, "409 limit_exceeded": 97}
    assert others == {"201": 3, "409 limit_exceeded": 2}
    assert int(real_redis.hget(product_keys(1).customers, "greedy") or 0) == 3
    assert engine_sync.snapshot(1).held == 6


async def test_mixed_quantities_never_take_one_customer_past_the_limit(
    settings: Settings, engine_sync: Engine, real_redis: redis.Redis
) -> None:
    engine_sync.set_stock(1, 1000, max_per_customer=5)
    async with serving(settings) as http:
        answers = await asyncio.gather(
            *(
                http.post("/api/holds", json={"product_id": 1, "quantity": 1 + i % 3, "customer_id": "greedy"})
                for i in range(100)
            )
        )
    units = sum(r.json()["quantity"] for r in answers if r.status_code == 201)
    assert {r.status_code for r in answers} == {201, 409}
    assert 3 <= units <= 5  # after the first wins, at most 2 units can be left unused
    assert int(real_redis.hget(product_keys(1).customers, "greedy") or 0) == units == engine_sync.snapshot(1).held


async def test_the_limit_counts_held_units_and_a_release_gives_one_back(
    settings: Settings, engine_sync: Engine
) -> None:
    engine_sync.set_stock(1, 1000, max_per_customer=2)
    async with serving(settings) as http:
        first = (await http.post("/api/holds", json={"product_id": 1, "quantity": 2, "customer_id": "c"})).json()
        assert await holds(http, 20, customer_id="c") == {"409 limit_exceeded": 20}
        assert (await http.delete(f"/api/holds/{first['hold_id']}")).status_code == 204
        assert await holds(http, 20, customer_id="c") == {"201": 2, "409 limit_exceeded": 18}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    """A burst stays in one window, however long a busy machine takes to send it."""
    return freeze_rate_limit_clock(monkeypatch)


@pytest.fixture
def limited(
    redis_url: str,
    database_url: str,
    tmp_path: Path,
    real_redis: redis.Redis,
    db: sa.Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    # The limiter lets a request through when Redis does not answer (it must not stop the sale); a burst on a
    # busy machine once waited out the 2 s connect timeout of the queue's client and let an 11th through.
    monkeypatch.setattr(engine.connection, "CONNECT_TIMEOUT", 30.0)
    return make_settings(redis_url, database_url, tmp_path, FLASHSALE_RATE_LIMIT_PER_SECOND=str(LIMIT))


async def test_a_flooding_address_gets_exactly_the_limit_per_second(
    limited: Settings, engine_sync: Engine, clock: FrozenClock, real_redis: redis.Redis
) -> None:
    engine_sync.set_stock(1, 1000)
    async with serving(limited) as http:
        burst = await asyncio.gather(
            *(http.post("/api/holds", json={"product_id": 1, "quantity": 1}) for _ in range(60))
        )
        clock.now += 1
        next_second = await holds(http, 30)

    statuses = Counter(r.status_code for r in burst)
    assert statuses == {201: LIMIT, 429: 60 - LIMIT}
    refused = next(r for r in burst if r.status_code == 429)
    assert assert_problem(refused, 429, "rate_limited")["limit"] == LIMIT
    assert refused.headers["Retry-After"] == "1"
    assert next_second == {"201": LIMIT, "429 rate_limited": 30 - LIMIT}
    # The engine saw only the requests let through: a refused one never reached a script.
    assert engine_sync.stats(1).get("holds") == 2 * LIMIT
    assert not engine_sync.stats(1).get("out_of_stock")
    # Each second's counter goes by itself.
    windows = list(real_redis.scan_iter(f"{api.ratelimit.KEY_PREFIX}*"))
    assert len(windows) == 2
    assert all(0 < real_redis.ttl(key) <= api.ratelimit.WINDOW_TTL_SECONDS for key in windows)


async def test_the_rate_limit_is_per_address(limited: Settings, engine_sync: Engine, clock: FrozenClock) -> None:
    engine_sync.set_stock(1, 1000)
    async with serving(limited, "198.51.100.1") as flooder, serving(limited, "198.51.100.2") as bystander:
        flooded = await holds(flooder, 40)
        unaffected = await holds(bystander, LIMIT)
    assert flooded == {"201": LIMIT, "429 rate_limited": 40 - LIMIT}
    assert unaffected == {"201": LIMIT}


async def test_the_rate_limit_is_shared_by_every_api_process(
    limited: Settings, engine_sync: Engine, clock: FrozenClock
) -> None:
    engine_sync.set_stock(1, 1000)
    # Two applications stand for two API processes: only Redis is shared between them.
    async with serving(limited) as first, serving(limited) as second:
        answers = await asyncio.gather(holds(first, 25), holds(second, 25))
    total = answers[0] + answers[1]
    assert total == {"201": LIMIT, "429 rate_limited": 50 - LIMIT}


async def test_only_the_hold_endpoint_is_rate_limited(
    limited: Settings, engine_sync: Engine, clock: FrozenClock
) -> None:
    engine_sync.set_stock(1, 1000)
    async with serving(limited) as http:
        created = await asyncio.gather(
            *(http.post("/api/holds", json={"product_id": 1, "quantity": 1}) for _ in range(LIMIT))
        )
        orders = await asyncio.gather(
            *(http.post("/api/orders", json={"hold_id": r.json()["hold_id"]}) for r in created)
        )
        reads = await asyncio.gather(*(http.get(f"/api/orders/{o.json()['order_id']}") for o in orders * 3))
    assert {r.status_code for r in orders} == {201}
    assert {r.status_code for r in reads} == {200}
