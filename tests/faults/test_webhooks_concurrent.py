"""Fault 5: duplicate and conflicting payment webhooks, delivered concurrently to two API processes under load.

One transaction delivered 50 times at once takes effect once; two transactions with different results
racing on one order leave exactly one applied. PostgreSQL ends with one row per transaction and at most one
applied payment per order.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from engine import Engine
from flashsale.verification.workload import AckedOrder, AckedPayment, Workload
from shared.webhook import WEBHOOK_PATH, webhook
from tests.faults.harness import SECONDS, Background, Outcome, add_products, verify, workload
from tests.faults.processes import Stack
from tests.support.api import WEBHOOK_SECRET
from tests.support.servers import RedisServer

pytestmark = pytest.mark.slow

LOAD_PRODUCTS = [1, 2]
WEBHOOK_PRODUCT = 3
DUPLICATED_ORDERS = 10
DELIVERIES = 50
RACED_ORDERS = 40
CLIENTS = 50
POOL = httpx.Limits(max_connections=16)


async def place_orders(http: httpx.AsyncClient, urls: Sequence[str], count: int) -> list[str]:
    async def one(i: int) -> str:
        base = urls[i % len(urls)]
        held = await http.post(f"{base}/api/holds", json={"product_id": WEBHOOK_PRODUCT, "quantity": 1})
        assert held.status_code == 201, held.text
        ordered = await http.post(f"{base}/api/orders", json={"hold_id": held.json()["hold_id"]})
        assert ordered.status_code == 201, ordered.text
        return str(ordered.json()["order_id"])

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def deliver(http: httpx.AsyncClient, url: str, order_id: str, txn: str, result: str) -> tuple[str, Any]:
    raw, headers = webhook(WEBHOOK_SECRET, order_id, txn, result)
    response = await http.post(url + WEBHOOK_PATH, content=raw, headers=headers)
    assert response.status_code == 200, response.text
    return txn, response.json()


async def duplicates_and_races(
    urls: Sequence[str],
) -> tuple[list[str], list[tuple[str, Any]], list[str], list[tuple[str, Any]]]:
    tls = ssl.create_default_context()
    async with httpx.AsyncClient(timeout=30, verify=tls, limits=POOL) as http:
        duplicated = await place_orders(http, urls, DUPLICATED_ORDERS)
        raced = await place_orders(http, urls, RACED_ORDERS)
    async with contextlib.AsyncExitStack() as stack:
        # Many small clients, new for the burst: httpx's pool scans every connection it holds on each request,
        # and a connection left idle past the server's 5 s keep-alive may be closed just as it is reused.
        pools = [
            await stack.enter_async_context(httpx.AsyncClient(timeout=30, verify=tls, limits=POOL))
            for _ in range(CLIENTS)
        ]
        sends = [(order_id, f"dup-{order_id}", "success") for order_id in duplicated for _ in range(DELIVERIES)]
        sends += [
            (order_id, f"race-{k}-{order_id}", result)
            for order_id in raced
            for k, result in enumerate(("success", "failed", "success"))
        ]
        order = list(range(len(sends)))
        random.Random(5).shuffle(order)  # duplicates and races interleaved, each spread over both servers
        answers = await asyncio.gather(
            *(deliver(pools[n % CLIENTS], urls[n % len(urls)], *sends[i]) for n, i in enumerate(order))
        )
    by_index = dict(zip(order, answers, strict=True))
    split = DUPLICATED_ORDERS * DELIVERIES
    return (
        duplicated,
        [by_index[i] for i in range(split)],
        raced,
        [by_index[i] for i in range(split, len(sends))],
    )


def test_duplicate_and_conflicting_webhooks_apply_exactly_once(
    make_stack: Callable[..., Stack],
    engine_redis: RedisServer,
    queue_redis: RedisServer,
    engine_f: Engine,
    db_f: sa.Engine,
) -> None:
    stack = make_stack(engine_redis.url, queue_redis.url, FLASHSALE_ORDER_TTL_SECONDS="120")
    add_products(engine_f, db_f, [*LOAD_PRODUCTS, WEBHOOK_PRODUCT], stock=1000)
    apis = [stack.api(name="api-1"), stack.api(name="api-2")]
    urls = [api.url for api in apis]
    stack.scheduler()
    stack.worker()
    problems: list[str] = []

    with Background(workload(urls, LOAD_PRODUCTS, clients=100, pay_success=0.4, pay_failed=0.2, cancel=0.4)) as load:
        load.wait_for("paid", 20)
        duplicated, duplicate_answers, raced, race_answers = asyncio.run(duplicates_and_races(urls))
        load.wait_for("paid", load.steps("paid") + 20, timeout=SECONDS + 30)
        load.last(SECONDS)

    # Build the ledger of what the webhooks acknowledged, checking each order's answers on the way.
    webhooks = Workload(urls, [WEBHOOK_PRODUCT], WEBHOOK_SECRET, clients=2 * DELIVERIES * DUPLICATED_ORDERS)
    for order_id in duplicated:
        answers = [body for txn, body in duplicate_answers if body["order_id"] == order_id]
        applied = Counter((body["applied"], body["duplicate"]) for body in answers)
        if applied != {(True, False): 1, (True, True): DELIVERIES - 1}:
            problems.append(f"order {order_id}: {DELIVERIES} deliveries of one transaction answered {dict(applied)}")
        webhooks.ledger.orders[order_id] = AckedOrder(order_id, WEBHOOK_PRODUCT, 1, "paid", f"dup-{order_id}")
        webhooks.ledger.payments[f"dup-{order_id}"] = AckedPayment(f"dup-{order_id}", order_id, "success", True)
    for order_id in raced:
        answers = [(txn, body) for txn, body in race_answers if body["order_id"] == order_id]
        winners = [(txn, body) for txn, body in answers if body["applied"]]
        if len(winners) != 1 or any(body["duplicate"] for _, body in answers):
            problems.append(f"order {order_id}: racing transactions answered {[b for _, b in answers]}")
            continue
        txn = winners[0][0]
        result = "success" if txn.startswith(("race-0", "race-2")) else "failed"
        status = "paid" if result == "success" else "cancelled"
        webhooks.ledger.orders[order_id] = AckedOrder(
            order_id, WEBHOOK_PRODUCT, 1, status, txn if status == "paid" else None
        )
        for other, other_body in answers:
            other_result = "success" if other.startswith(("race-0", "race-2")) else "failed"
            webhooks.ledger.payments[other] = AckedPayment(other, order_id, other_result, other == txn)
            # Settling is atomic: the losers see the order as the winner left it.
            if other_body["status"] != status:
                problems.append(f"order {order_id}: {result} applied, yet {other} answered {other_body['status']}")
    webhooks.tally.requests = len(duplicate_answers) + len(race_answers)
    webhooks.tally.steps.update(
        {"duplicate_deliveries": len(duplicate_answers), "racing_deliveries": len(race_answers)}
    )

    outcome = Outcome(
        "webhooks_concurrent",
        "A transaction delivered 50 times at once applies once; "
        "racing transactions on one order leave exactly one applied",
    )
    outcome.problems += problems
    verify(stack, engine_f, db_f, [*LOAD_PRODUCTS, WEBHOOK_PRODUCT], [load.load, webhooks], outcome, faults=0)
    outcome.figures.update(
        {
            "clients": load.load.clients + DELIVERIES * DUPLICATED_ORDERS + 3 * RACED_ORDERS,
            "duplicated_transactions": DUPLICATED_ORDERS,
            "deliveries_each": DELIVERIES,
            "raced_orders": RACED_ORDERS,
        }
    )
    outcome.check()
