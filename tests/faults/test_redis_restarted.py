"""Fault 3: the engine's Redis is killed with SIGKILL under load and started again.

With ``appendfsync always`` it comes back with everything it acknowledged. With persistence off it comes
back empty and ``flashsale reconcile --rebuild-all`` restores every product from PostgreSQL. While it is
down the API answers 503 ``engine_unavailable`` at once: no 500, no hang. "At once" is measured end to end by a
probe client in a process of its own (``tests/faults/probe.py``), and "no request waits out the deadline" by the
API's own request-duration histogram; the 200 load clients' timings carry their shared event loop's lag on a
busy machine, and are reported.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis
import sqlalchemy as sa

from engine import Engine
from flashsale.verification.audit import audit
from shared.settings import load as load_settings
from tests.faults.conftest import StartRedis
from tests.faults.harness import SECONDS, Background, Outcome, add_products, verify, workload
from tests.faults.probe import Answer, Probe, answered_slower_than
from tests.faults.processes import Api, Stack
from tests.support.servers import RedisServer

pytestmark = pytest.mark.slow

PRODUCTS = [1, 2, 3, 4]
AOF_ALWAYS = ("--appendonly", "yes", "--appendfsync", "always")
DOWN_SECONDS = 2.0
ANSWER_BOUND_SECONDS = 1.5
"""Every answer the probe gets while Redis is down comes within this: a request never waits out a timeout."""
DEADLINE_BOUND_SECONDS = load_settings({}).redis_timeout_seconds + 0.5
"""No request the API answers around the outage takes this long (a bucket of its histogram)."""
UNAVAILABLE = "503 engine_unavailable"


@pytest.fixture
def client_of() -> Iterator[Callable[[RedisServer], Engine]]:
    clients: list[redis.Redis] = []

    def engine(server: RedisServer) -> Engine:
        clients.append(redis.Redis.from_url(server.url, socket_timeout=5))
        return Engine(clients[-1])

    yield engine
    for client in clients:
        client.close()


@dataclass
class Outage:
    killed: float
    restarting: float
    """When its start began: until then nothing answers on its port."""
    back: float
    slow: float
    """Answers the API gave slower than DEADLINE_BOUND_SECONDS from before the kill until Redis was back."""
    probed: list[Answer]


def kill_and_restart(start: StartRedis, server: RedisServer, api: Api, *extra: str) -> Outage:
    """SIGKILL ``server``, wait, start it again on its port and directory, with a probe on ``api`` meanwhile."""
    slow_before = answered_slower_than(api.url, DEADLINE_BOUND_SECONDS)
    with Probe(api.url, PRODUCTS[0], "read") as probe:
        killed = time.monotonic()
        server.process.kill()
        server.process.wait(10)
        time.sleep(DOWN_SECONDS)
        restarting = time.monotonic()
        start("engine", *extra, port=server.port)
        back = time.monotonic()
        probed = probe.answers()
    slow = answered_slower_than(api.url, DEADLINE_BOUND_SECONDS) - slow_before
    return Outage(killed, restarting, back, slow, probed)


def check_outage(outcome: Outcome, load: Background, outage: Outage) -> None:
    """While Redis was down: some answers, every 5xx a 503 engine_unavailable, the probe's at once, none of the
    API's waiting out the deadline."""
    killed, back = outage.killed, outage.back
    during = [(taken, key) for at, taken, key in load.load.tally.error_latencies if killed <= at <= back]
    probed = [(taken, key) for at, taken, key in outage.probed if killed <= at and at + taken <= outage.restarting]
    slowest = max((taken for taken, _ in during), default=None)
    probe_slowest = max((taken for taken, _ in probed), default=None)
    outcome.figures.update(
        {
            "redis_down_s": round(back - killed, 1),
            "answers_503_while_down": len(during),
            "slowest_503_s": round(slowest, 3) if slowest is not None else None,
            "probe_answers_while_down": len(probed),
            "probe_slowest_answer_s": round(probe_slowest, 3) if probe_slowest is not None else None,
            "api_answers_slower_than_deadline": outage.slow,
        }
    )
    if not during:
        outcome.problems.append("no request was answered 503 while Redis was down")
    other = {key for _, key in during + probed} - {UNAVAILABLE}
    if other:
        outcome.problems.append(f"answers other than {UNAVAILABLE} while Redis was down: {other}")
    if not probed:
        outcome.problems.append("the probe had no answer while Redis was down")
    if probe_slowest is not None and probe_slowest > ANSWER_BOUND_SECONDS:
        outcome.problems.append(
            f"a 503 took {probe_slowest:.2f}s for the probe while Redis was down (bound {ANSWER_BOUND_SECONDS}s)"
        )
    if outage.slow:
        outcome.problems.append(
            f"the API answered {outage.slow:g} requests in more than {DEADLINE_BOUND_SECONDS}s around the outage"
        )


def test_redis_killed_with_aof_always_loses_nothing_acknowledged(
    start_private_redis: StartRedis,
    queue_redis: RedisServer,
    make_stack: Callable[..., Stack],
    client_of: Callable[[RedisServer], Engine],
    db_f: sa.Engine,
) -> None:
    server = start_private_redis("engine", *AOF_ALWAYS)
    stack = make_stack(server.url, queue_redis.url)
    engine = client_of(server)
    add_products(engine, db_f, PRODUCTS, stock=400)
    api = stack.api()
    stack.scheduler()
    stack.worker()

    with Background(workload([api.url], PRODUCTS)) as load:
        load.wait_for("paid", 50)
        outage = kill_and_restart(start_private_redis, server, api, *AOF_ALWAYS)
        acknowledged = load.steps("ordered")
        load.wait_for("ordered", acknowledged + 50)
        time.sleep(SECONDS / 2)

    outcome = Outcome(
        "redis_killed_aof_always",
        "Redis killed with kill -9 (AOF, appendfsync always) loses nothing it acknowledged",
    )
    verify(stack, engine, db_f, PRODUCTS, [load.load], outcome, faults=1, allowed_5xx=[UNAVAILABLE])
    check_outage(outcome, load, outage)
    outcome.check()


def test_redis_restarted_empty_is_rebuilt_from_postgresql_without_oversell(
    start_private_redis: StartRedis,
    queue_redis: RedisServer,
    make_stack: Callable[..., Stack],
    client_of: Callable[[RedisServer], Engine],
    db_f: sa.Engine,
) -> None:
    server = start_private_redis("engine")  # no AOF, no snapshots: it comes back empty
    stack = make_stack(server.url, queue_redis.url)
    engine = client_of(server)
    add_products(engine, db_f, PRODUCTS, stock=300)
    api = stack.api()
    stack.scheduler()
    stack.worker()

    with Background(workload([api.url], PRODUCTS, seed=1)) as before:
        before.wait_for("paid", 50)
        outage = kill_and_restart(start_private_redis, server, api)
    assert engine.product_ids() == [], "Redis came back with data: the test needs it empty"

    with Background(workload([api.url], PRODUCTS, seed=2)) as after:
        time.sleep(0.5)  # the load meets an engine without products: 404s, never 500s
        rebuild = stack.run("reconcile", "--rebuild-all", "--json")
        rebuilt = time.monotonic()
        after.wait_for("paid", 50)
        time.sleep(SECONDS / 2)

    outcome = Outcome(
        "redis_restarted_empty",
        "Redis restarted empty: reconcile --rebuild-all restores every product from PostgreSQL, no oversell",
    )
    if rebuild.returncode != 0:
        outcome.problems.append(f"reconcile --rebuild-all exited {rebuild.returncode}: {rebuild.stdout[-600:]}")
    actions = json.loads(rebuild.stdout).get("actions", []) if rebuild.stdout.startswith("{") else []
    restored = sorted(a["product_id"] for a in actions if a.get("action") == "rebuild" and "product_id" in a)
    if restored != PRODUCTS:
        outcome.problems.append(f"rebuilt {restored}, expected every product {PRODUCTS}")
    # Only what the load acknowledged after the rebuild must all be in PostgreSQL: without persistence, what
    # Redis acknowledged but no worker had drained when it died is gone (the guarantee needs the AOF).
    verify(stack, engine, db_f, PRODUCTS, [after.load], outcome, faults=1, allowed_5xx=[UNAVAILABLE])
    earlier = audit(db_f, before.load.ledger, PRODUCTS)
    outcome.figures.update(
        {
            "clients": after.load.clients,
            "requests": before.load.tally.requests + after.load.tally.requests,
            "rebuilt_products": restored,
            "rebuild_s": round(rebuilt - outage.back, 1),
            "undrained_when_redis_died": len(earlier.lost),
            "acknowledged_before_the_crash": earlier.orders_checked + earlier.payments_checked,
        }
    )
    check_outage(outcome, before, outage)
    outcome.check()
