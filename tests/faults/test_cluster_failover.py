"""Fault 8: a Redis Cluster primary is killed under load and the cluster promotes its replica.

Three primaries, each with a replica (``cluster-node-timeout`` 1 s), the queue on a plain Redis, and
``FLASHSALE_REDIS_ACK_REPLICAS=1``: a write is answered once the replica of the shard that took it has it.
The products span the three shards. SIGKILL the primary of the first product's shard: redis-py's cluster
client must find the promoted replica by itself, the other shards sell on meanwhile, and, once the killed
node is back as the new primary's replica, the lost shard sells again. Nothing acknowledged is lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from engine import Engine
from engine.connection import connect
from engine.exceptions import EngineUnavailable
from engine.keys import product_keys
from tests.conftest import started
from tests.faults.harness import SECONDS, Background, Outcome, add_products, verify, workload
from tests.faults.processes import Stack, wait_until
from tests.faults.test_redis_failover import NOT_REPLICATED, UNAVAILABLE, check_answers
from tests.support.cluster import NODE_TIMEOUT_MS, ReplicatedCluster, replicated_cluster
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

PRODUCTS = [1, 2, 3, 4, 5, 6]


@pytest.fixture
def cluster() -> Iterator[ReplicatedCluster]:
    yield from started(replicated_cluster(), "a Redis Cluster with replicas")


def orders_of(load: Background, products: set[int]) -> int:
    return sum(1 for order in list(load.load.ledger.orders.values()) if order.product_id in products)


def test_a_cluster_primary_killed_under_load_fails_over_and_loses_nothing_acknowledged(
    cluster: ReplicatedCluster,
    queue_redis: RedisServer,
    make_stack: Callable[..., Stack],
    db_f: sa.Engine,
) -> None:
    engine = Engine(connect(cluster.url, cluster=True, socket_timeout=2, pool_timeout=2))
    shards = {product: cluster.primary_of(product_keys(product).product) for product in PRODUCTS}
    assert len(set(shards.values())) == 3, f"the products should span the three primaries: {shards}"
    key = product_keys(PRODUCTS[0]).product
    old = shards[PRODUCTS[0]]
    victims = {product for product, port in shards.items() if port == old}
    stack = make_stack(cluster.url, queue_redis.url, FLASHSALE_REDIS_CLUSTER="1", FLASHSALE_REDIS_ACK_REPLICAS="1")
    add_products(engine, db_f, PRODUCTS, stock=3000)
    api = stack.api()
    stack.scheduler()
    stack.worker()

    with Background(workload([api.url], PRODUCTS, record_answers=True)) as load:
        load.wait_for("paid", 50)
        victim_orders = orders_of(load, victims)
        killed_at = time.monotonic()
        cluster.server(old).process.kill()
        new = cluster.wait_for_new_primary(key, old)
        promoted_at = time.monotonic()

        def answers() -> bool:
            try:
                engine.snapshot(PRODUCTS[0])  # through redis-py's cluster client, as the API and worker go
            except EngineUnavailable:
                return False
            return True

        wait_until(answers, "the cluster client reaches the promoted replica", 30, 0.1)
        client_recovered_at = time.monotonic()
        cluster.restart(cluster.server(old))
        replica_back_at = time.monotonic()
        wait_until(lambda: orders_of(load, victims) >= victim_orders + 20, "the lost shard sells again", 60, 0.1)
        recovered_at = time.monotonic()
        time.sleep(SECONDS / 2)

    outcome = Outcome(
        "redis_cluster_failover",
        "A Redis Cluster primary (of 3, each with a replica) killed (SIGKILL) under load, "
        "FLASHSALE_REDIS_ACK_REPLICAS=1: the replica is promoted, the clients follow, nothing acknowledged is lost",
    )
    verify(stack, engine, db_f, PRODUCTS, [load.load], outcome, faults=1, allowed_5xx=[UNAVAILABLE, NOT_REPLICATED])
    check_answers(outcome, load, killed_at, recovered_at)
    outcome.figures.update(
        {
            "shards": 3,
            "cluster_node_timeout_ms": NODE_TIMEOUT_MS,
            "failover_s": round(promoted_at - killed_at, 1),
            "cluster_client_recovered_s": round(client_recovered_at - killed_at, 1),
            "replica_back_s": round(replica_back_at - killed_at, 1),
            "lost_shard_selling_again_s": round(recovered_at - killed_at, 1),
            "new_primary_port_changed": new != old,
            "answers_not_replicated": load.load.tally.statuses.get(NOT_REPLICATED, 0),
            "holds_lost": load.steps("hold_lost"),
        }
    )
    if load.steps("hold_lost"):
        outcome.problems.append(f"{load.steps('hold_lost')} acknowledged holds were lost")
    engine.redis.close()
    outcome.check()
