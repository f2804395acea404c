"""Scale-out: the whole flow on a 3-primary Redis Cluster, and several API processes sharing one engine."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

import httpx
import pytest
import sqlalchemy as sa
from redis.cluster import RedisCluster

from engine import Engine
from engine.keys import product_keys
from flashsale.stack.supervisor import descendants
from tests.faults.harness import SECONDS, Background, Outcome, add_products, verify, workload
from tests.faults.processes import Stack
from tests.support.servers import RedisServer

pytestmark = pytest.mark.slow

CLUSTER_PRODUCTS = [1, 2, 3, 4, 5, 6]
RACE_STOCK = 100
RACE_HOLDS = 300
RACE_ROUNDS = 3


@pytest.fixture
def cluster_engine(cluster_url: str) -> Iterator[Engine]:
    client = RedisCluster.from_url(cluster_url)
    client.flushdb(target_nodes=RedisCluster.PRIMARIES)
    yield Engine(client)
    client.flushdb(target_nodes=RedisCluster.PRIMARIES)
    client.close()


def expiries(engine: Engine, products: Sequence[int]) -> tuple[int, int]:
    stats = [engine.stats(product_id) for product_id in products]
    return sum(s.get("expired", 0) for s in stats), sum(s.get("order_expired", 0) for s in stats)


@pytest.mark.cluster
def test_the_whole_flow_runs_on_a_redis_cluster_with_the_queue_on_plain_redis(
    cluster_engine: Engine,
    cluster_url: str,
    queue_redis: RedisServer,
    make_stack: Callable[..., Stack],
    db_f: sa.Engine,
) -> None:
    shards = {cluster_engine.redis.get_node_from_key(product_keys(p).product).name for p in CLUSTER_PRODUCTS}
    assert len(shards) == 3, f"the products should span the three primaries, they are on {shards}"
    # Holds last 5 s: they still expire during the load, and outlive the race's holds-then-orders.
    stack = make_stack(cluster_url, queue_redis.url, FLASHSALE_REDIS_CLUSTER="1", FLASHSALE_HOLD_TTL_SECONDS="5")
    add_products(cluster_engine, db_f, CLUSTER_PRODUCTS, stock=300)
    api = stack.api()
    stack.scheduler()
    stack.worker()

    with Background(workload([api.url], CLUSTER_PRODUCTS)) as load:
        load.wait_for("paid", 50)
        load.last(SECONDS)
    race = stack.run("race", "--url", api.url, "--product", "999", "--stock", "50", "--concurrency", "150", "--json")

    outcome = Outcome(
        "redis_cluster",
        "Holds, orders, webhooks, reaping and reconcile on a 3-primary Redis Cluster; the race never oversells",
    )
    verify(stack, cluster_engine, db_f, [*CLUSTER_PRODUCTS, 999], [load.load], outcome, faults=0)
    holds_expired, orders_expired = expiries(cluster_engine, CLUSTER_PRODUCTS)
    report = json.loads(race.stdout) if race.stdout.startswith("{") else {}
    outcome.figures.update(
        {
            "shards": len(shards),
            "holds_expired": holds_expired,
            "orders_expired": orders_expired,
            "race": {k: report.get(k) for k in ("stock", "concurrency", "successes", "refusals", "verdict")},
        }
    )
    if race.returncode != 0:
        outcome.problems.append(f"flashsale race failed on the cluster: {race.stdout[-800:]} {race.stderr[-400:]}")
    if not holds_expired or not orders_expired:
        outcome.problems.append(f"nothing was reaped: {holds_expired} holds and {orders_expired} orders expired")
    outcome.check()


async def race_across(urls: Sequence[str], product_id: int) -> Counter[str]:
    """RACE_HOLDS holds at once, spread over ``urls``; answers by status and code ("no answer" for none)."""
    start = asyncio.Barrier(RACE_HOLDS)
    winners: list[tuple[int, str]] = []
    tls = ssl.create_default_context()  # one per client would cost more than the race

    async def one(i: int, http: httpx.AsyncClient) -> str:
        url = urls[i % len(urls)]
        with contextlib.suppress(httpx.TransportError):
            await http.get(url + "/livez")  # the connection is open before the start
        await start.wait()
        body = {"product_id": product_id, "quantity": 1, "customer_id": f"r{i}"}
        try:
            response = await http.post(url + "/api/holds", json=body)
        except httpx.TransportError as error:
            return f"no answer ({type(error).__name__})"
        if response.status_code == 201:
            winners.append((i, response.json()["hold_id"]))
            return "201"
        return f"{response.status_code} {response.json().get('code')}"

    async with contextlib.AsyncExitStack() as stack:
        # A client each: one pool of hundreds of connections would be slower than the server under test.
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(timeout=30, verify=tls)) for _ in range(RACE_HOLDS)
        ]
        answers = Counter(await asyncio.gather(*(one(i, http) for i, http in enumerate(clients))))
        # The winners give their holds back, through both servers too.
        released = await asyncio.gather(
            *(clients[i].delete(f"{urls[(i + 1) % len(urls)]}/api/holds/{hold_id}") for i, hold_id in winners)
        )
    answers.update(f"release {r.status_code}" for r in released)
    return answers


def judge_race(engine: Engine, product_id: int, answers: Counter[str]) -> list[str]:
    """Exactly RACE_STOCK holds taken, by the engine's count (an answer may have been lost), never more."""
    taken = engine.stats(product_id).get("holds", 0)
    refused = engine.stats(product_id).get("out_of_stock", 0)
    # A request cut off on a keep-alive connection the server had just closed may never reach the engine.
    lost = sum(n for k, n in answers.items() if k.startswith("no answer"))
    problems = []
    if taken != RACE_STOCK or not RACE_HOLDS - lost <= taken + refused <= RACE_HOLDS:
        problems.append(f"race on {product_id}: the engine took {taken} holds and refused {refused}")
    expected = {"201", "409 out_of_stock", "release 204"}
    if answers["201"] > RACE_STOCK or {k for k in answers if not k.startswith("no answer")} - expected:
        problems.append(f"race on {product_id} answered {dict(answers)}")
    if not engine.snapshot(product_id).consistent:
        problems.append(f"race on {product_id}: counters do not add up: {engine.snapshot(product_id)}")
    return problems


def test_a_race_across_several_api_processes_never_oversells(
    make_stack: Callable[..., Stack],
    engine_redis: RedisServer,
    queue_redis: RedisServer,
    engine_f: Engine,
    db_f: sa.Engine,
) -> None:
    # Holds outlive the race (a hold expiring mid-race would put its unit on sale again); the load leaves no
    # hold or order to expire, so the workers still drain to nothing held or pending at the end.
    stack = make_stack(
        engine_redis.url, queue_redis.url, FLASHSALE_HOLD_TTL_SECONDS="60", FLASHSALE_ORDER_TTL_SECONDS="60"
    )
    spread = stack.api(workers=2, name="api-workers-2")
    single = stack.api(name="api-single")
    assert len(descendants(spread.pid)) >= 2, "serve --workers 2 should run two API processes"
    stack.scheduler()
    stack.worker()
    races = list(range(100, 100 + RACE_ROUNDS))
    add_products(engine_f, db_f, races, stock=RACE_STOCK)
    add_products(engine_f, db_f, [1, 2], stock=2000)
    problems: list[str] = []
    race_answers: Counter[str] = Counter()

    settled = {"abandon": 0.0, "pay_success": 0.6, "pay_failed": 0.2, "cancel": 0.2}
    with Background(workload([spread.url, single.url], [1, 2], **settled)) as load:
        load.wait_for("paid", 20)
        for product_id in races:
            answers = asyncio.run(race_across([spread.url, single.url], product_id))
            race_answers.update(answers)
            problems += judge_race(engine_f, product_id, answers)
        race = stack.run("race", "--url", spread.url, "--product", "999", "--stock", "30", "--concurrency", "90")
        if race.returncode != 0:
            problems.append(f"flashsale race against {spread.name} failed: {race.stdout[-600:]}")
        time.sleep(SECONDS / 2)

    outcome = Outcome(
        "several_api_processes",
        "serve --workers 2 and a second serve process share one engine: a race spread over both never oversells",
    )
    outcome.problems += problems
    verify(stack, engine_f, db_f, [1, 2, *races, 999], [load.load], outcome, faults=0)
    outcome.figures.update(
        {
            "api_processes": 3,
            "race_rounds": RACE_ROUNDS,
            "race_holds_each": RACE_HOLDS,
            "race_stock_each": RACE_STOCK,
            "race_answers": dict(race_answers),
            "requests": outcome.figures["requests"] + RACE_ROUNDS * RACE_HOLDS,
        }
    )
    outcome.check()
