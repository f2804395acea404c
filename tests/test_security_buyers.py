"""With buyer tokens on, a hold or order is its buyer's alone, and the limits hold per verified buyer: on Redis and on
a Redis Cluster (the owner is checked inside the scripts, in the same atomic call as the change)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa
from redis.cluster import RedisCluster

import api.ratelimit
from api.app import create_app
from engine import Engine
from engine.keys import product_keys
from tests.support.api import assert_problem, make_settings, serve
from tests.support.buyers import JWT_ENV, bearer
from tests.support.sales import add_product

pytestmark = pytest.mark.anyio

ALICE, BOB = bearer("alice"), bearer("bob")


@pytest.fixture(params=["redis", pytest.param("cluster", marks=pytest.mark.cluster)])
def backend(
    request: pytest.FixtureRequest, redis_url: str, real_redis: redis.Redis
) -> Iterator[tuple[Engine, dict[str, str]]]:
    """The engine the test arranges with, and the settings' environment for the API on the same backend."""
    if request.param == "redis":
        yield Engine(real_redis), {}
        return
    cluster_url = request.getfixturevalue("cluster_url")
    cluster = RedisCluster.from_url(cluster_url)
    cluster.flushdb(target_nodes=RedisCluster.PRIMARIES)
    yield (
        Engine(cluster),
        {
            "FLASHSALE_REDIS_URL": cluster_url,
            "FLASHSALE_REDIS_CLUSTER": "1",
            "FLASHSALE_QUEUE_REDIS_URL": redis_url,
        },
    )
    cluster.close()


@pytest.fixture
async def shop(
    backend: tuple[Engine, dict[str, str]], redis_url: str, database_url: str, tmp_path: Path, db: sa.Engine
) -> AsyncIterator[tuple[Engine, httpx.AsyncClient]]:
    engine, env = backend
    settings = make_settings(env.get("FLASHSALE_REDIS_URL", redis_url), database_url, tmp_path, **JWT_ENV, **env)
    async with serve(create_app(settings)) as http:
        yield engine, http


async def created(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def state(engine: Engine, product_id: int) -> tuple[int, int, int, int]:
    s = engine.snapshot(product_id)
    return s.available, s.held, s.pending, s.sold


async def test_another_buyer_can_neither_read_release_convert_nor_cancel_what_a_buyer_holds_or_ordered(
    shop: tuple[Engine, httpx.AsyncClient],
) -> None:
    engine, http = shop
    for product_id in (1, 2, 3):  # on a cluster, three shards
        engine.set_stock(product_id, 10, price_cents=100, max_per_customer=5)
    hold = await created(await http.post("/api/holds", json={"product_id": 1, "quantity": 1}, headers=ALICE))
    held = await created(await http.post("/api/holds", json={"product_id": 2, "quantity": 1}, headers=ALICE))
    order = await created(await http.post("/api/orders", json={"hold_id": held["hold_id"]}, headers=ALICE))
    before = [state(engine, p) for p in (1, 2)]

    # Bob knows both ids. Every answer is the one an id nobody issued gets.
    hold_id, order_id = hold["hold_id"], order["order_id"]
    assert_problem(await http.get(f"/api/holds/{hold_id}", headers=BOB), 404, "hold_not_found")
    assert_problem(await http.delete(f"/api/holds/{hold_id}", headers=BOB), 404, "hold_not_found")
    assert_problem(await http.post("/api/orders", json={"hold_id": hold_id}, headers=BOB), 404, "hold_not_found")
    converted = await http.post(
        "/api/orders", json={"hold_id": held["hold_id"]}, headers={**BOB, "Idempotency-Key": "k"}
    )
    assert_problem(converted, 404, "hold_not_found")
    assert_problem(await http.get(f"/api/orders/{order_id}", headers=BOB), 404, "order_not_found")
    assert_problem(await http.post(f"/api/orders/{order_id}/cancel", headers=BOB), 404, "order_not_found")
    nobody = await http.get(f"/api/holds/{hold_id[:-4]}ZZZZ", headers=BOB)
    assert (await http.get(f"/api/holds/{hold_id}", headers=BOB)).json()["detail"] == nobody.json()["detail"].replace(
        nobody.json()["hold_id"], hold_id
    )

    assert [state(engine, p) for p in (1, 2)] == before
    assert engine.hold(hold_id).status == "active"
    assert engine.order(order_id).status == "pending"
    # Alice still can.
    assert (await http.get(f"/api/holds/{hold_id}", headers=ALICE)).status_code == 200
    assert (await http.get(f"/api/orders/{order_id}", headers=ALICE)).status_code == 200
    assert (await http.post(f"/api/orders/{order_id}/cancel", headers=ALICE)).json()["status"] == "cancelled"
    assert (await http.delete(f"/api/holds/{hold_id}", headers=ALICE)).status_code == 204


async def test_one_buyer_firing_100_concurrent_holds_gets_exactly_the_limit_whatever_customer_id_it_claims(
    shop: tuple[Engine, httpx.AsyncClient],
) -> None:
    engine, http = shop
    engine.set_stock(1, 1000, max_per_customer=3)
    claims = [{}, {"customer_id": "greedy"}, *({"customer_id": f"bot-{i}"} for i in range(3))]

    answers = await asyncio.gather(
        *(
            http.post("/api/holds", json={"product_id": 1, "quantity": 1, **claims[i % 5]}, headers=bearer("greedy"))
            for i in range(100)
        )
    )

    counted = Counter(f"{r.status_code} {r.json().get('code', '')}".strip() for r in answers)
    assert counted == {"201": 3, "409 limit_exceeded": 37, "422 customer_mismatch": 60}
    assert engine.snapshot(1).held == 3
    assert {r.json()["customer_id"] for r in answers if r.status_code == 201} == {"greedy"}


async def test_an_idempotency_key_is_scoped_to_the_verified_buyer(shop: tuple[Engine, httpx.AsyncClient]) -> None:
    engine, http = shop
    engine.set_stock(1, 10, max_per_customer=5)
    body = {"product_id": 1, "quantity": 1}

    first = await created(await http.post("/api/holds", json=body, headers={**ALICE, "Idempotency-Key": "k-1"}))
    again = await created(await http.post("/api/holds", json=body, headers={**ALICE, "Idempotency-Key": "k-1"}))
    bobs = await created(await http.post("/api/holds", json=body, headers={**BOB, "Idempotency-Key": "k-1"}))

    assert again["hold_id"] == first["hold_id"]
    assert bobs["hold_id"] != first["hold_id"]
    assert engine.snapshot(1).held == 2


async def test_an_order_only_its_buyer_sees_in_postgresql_stays_hidden_from_others(
    shop: tuple[Engine, httpx.AsyncClient], db: sa.Engine
) -> None:
    from workers.drain import drain_batch

    engine, http = shop
    add_product(engine, db, 1, 10)
    held = await created(await http.post("/api/holds", json={"product_id": 1, "quantity": 1}, headers=ALICE))
    order = await created(await http.post("/api/orders", json={"hold_id": held["hold_id"]}, headers=ALICE))
    await http.post(f"/api/orders/{order['order_id']}/cancel", headers=ALICE)
    drain_batch(engine, db, 1)
    # Redis forgets the closed order (as it does after a day): PostgreSQL answers, for its buyer only.
    engine.redis.hdel(product_keys(1).orders, order["order_id"].split("_", 1)[1])

    assert (await http.get(f"/api/orders/{order['order_id']}", headers=ALICE)).json()["status"] == "cancelled"
    assert_problem(await http.get(f"/api/orders/{order['order_id']}", headers=BOB), 404, "order_not_found")
    assert_problem(await http.post(f"/api/orders/{order['order_id']}/cancel", headers=BOB), 404, "order_not_found")


class FrozenClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


async def test_a_buyer_gets_exactly_the_per_buyer_rate_limit_per_second(
    redis_url: str,
    database_url: str,
    tmp_path: Path,
    real_redis: redis.Redis,
    db: sa.Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(api.ratelimit, "time", FrozenClock(2_000_000_000.25))
    Engine(real_redis).set_stock(1, 1000)
    settings = make_settings(
        redis_url, database_url, tmp_path, **JWT_ENV, FLASHSALE_RATE_LIMIT_PER_BUYER_PER_SECOND="4"
    )
    async with serve(create_app(settings)) as http:

        async def burst(who: str) -> Counter[str]:
            answers = await asyncio.gather(
                *(
                    http.post("/api/holds", json={"product_id": 1, "quantity": 1}, headers=bearer(who))
                    for _ in range(30)
                )
            )
            return Counter(f"{r.status_code} {r.json().get('code', '')}".strip() for r in answers)

        greedy, other = await burst("greedy"), await burst("other")

    assert greedy == other == {"201": 4, "429 rate_limited": 26}
    assert Engine(real_redis).snapshot(1).held == 8
