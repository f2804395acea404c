"""The API on a Redis Cluster engine, with the queue on a separate plain Redis."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest
import redis
import sqlalchemy as sa
from redis.cluster import RedisCluster

from api.app import create_app
from engine import Engine
from engine.keys import product_keys
from tests.support.api import assert_problem, make_settings, order, serve, signed

pytestmark = [pytest.mark.anyio, pytest.mark.cluster]


ClusterApi = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def cluster_engine(cluster_url: str) -> Engine:
    client = RedisCluster.from_url(cluster_url)
    client.flushdb(target_nodes=RedisCluster.PRIMARIES)
    return Engine(client)


@pytest.fixture
def cluster_api(
    cluster_url: str, redis_url: str, database_url: str, tmp_path: Path, real_redis: redis.Redis, db: sa.Engine
) -> ClusterApi:
    """Serve the API on the cluster engine, its queue on the plain test Redis; keyword arguments add settings."""

    def start(**env: str) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        settings = make_settings(
            cluster_url, database_url, tmp_path, FLASHSALE_REDIS_CLUSTER="1", FLASHSALE_QUEUE_REDIS_URL=redis_url, **env
        )
        return serve(create_app(settings))

    return start


async def test_a_sale_runs_through_the_api_on_a_cluster(cluster_engine: Engine, cluster_api: ClusterApi) -> None:
    for product_id in (1, 2, 3):  # products on different shards
        cluster_engine.set_stock(product_id, 20, price_cents=100)
    cluster_engine.set_stock(4, 1, price_cents=100)
    async with cluster_api() as http:
        responses = await asyncio.gather(
            *(http.post("/api/holds", json={"product_id": 1 + i % 3, "quantity": 1}) for i in range(90))
        )
        created = await order(http, 4)
        raw, headers = signed({"order_id": created["order_id"], "transaction_id": "t-c", "status": "success"})
        paid = await http.post("/api/payments/webhook", content=raw, headers=headers)
        ready = await http.get("/readyz")
        metrics = await http.get("/metrics")

    assert Counter(r.status_code for r in responses) == {201: 60, 409: 30}
    assert paid.json()["status"] == "paid"
    assert ready.status_code == 200
    assert 'flashsale_holds_created_total{product_id="3"} 20.0' in metrics.text
    assert [cluster_engine.snapshot(p).available for p in (1, 2, 3)] == [0, 0, 0]
    assert cluster_engine.snapshot(4).sold == 1


async def test_one_transaction_id_pays_one_order_across_shards(cluster_engine: Engine, cluster_api: ClusterApi) -> None:
    cluster = cluster_engine.redis
    assert cluster.keyslot(product_keys(1).product) != cluster.keyslot(product_keys(2).product)
    cluster_engine.set_stock(1, 5, price_cents=100)
    cluster_engine.set_stock(2, 5, price_cents=100)
    async with cluster_api() as http:
        first, second = await order(http, 1), await order(http, 2)
        answers = []
        for created in (first, second):
            raw, headers = signed({"order_id": created["order_id"], "transaction_id": "pay_SAME", "status": "success"})
            answers.append(await http.post("/api/payments/webhook", content=raw, headers=headers))

    assert answers[0].json()["applied"] is True
    assert_problem(answers[1], 409, "transaction_id_reused")
    assert first["order_id"] not in answers[1].text
    assert (cluster_engine.snapshot(1).sold, cluster_engine.snapshot(2).sold) == (1, 0)
    assert cluster_engine.order(second["order_id"]).status == "pending"


async def test_slow_payments_on_a_cluster_processing_then_a_revival(
    cluster_engine: Engine, cluster_api: ClusterApi
) -> None:
    for product_id in (1, 2, 3):  # products on different shards
        cluster_engine.set_stock(product_id, 5, price_cents=100)

    async def webhook(http: httpx.AsyncClient, order_id: str, txn: str, status: str) -> dict[str, object]:
        raw, headers = signed({"order_id": order_id, "transaction_id": txn, "status": status})
        return (await http.post("/api/payments/webhook", content=raw, headers=headers)).json()  # type: ignore[no-any-return]

    async with cluster_api(FLASHSALE_ORDER_TTL_SECONDS="1") as http:
        held = [await order(http, p) for p in (1, 2, 3)]
        processing = await webhook(http, held[0]["order_id"], "t-p", "processing")
        await asyncio.sleep(1.1)  # past the order TTL: the others lapse unpaid
        paid = await webhook(http, held[0]["order_id"], "t-p", "success")
        revived = await webhook(http, held[1]["order_id"], "t-r", "success")

    assert processing["applied"] is True
    assert (paid["status"], paid["revived"]) == ("paid", False)
    assert (revived["status"], revived["revived"]) == ("paid", True)
    snapshots = [cluster_engine.snapshot(p) for p in (1, 2, 3)]
    assert all(s.consistent for s in snapshots)
    assert [(s.available, s.pending, s.sold) for s in snapshots] == [(4, 0, 1), (4, 0, 1), (5, 0, 0)]
