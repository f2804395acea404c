"""Fault 6: the engine's Redis hangs (SIGSTOP) under load, then continues (SIGCONT).

A stopped Redis accepts connections and never answers. Every request sent while it is stopped must be
answered 503 ``engine_unavailable`` within the deadline (``FLASHSALE_REDIS_TIMEOUT_SECONDS``, 2 s by default)
plus 0.5 s, queued ones included, and no request in flight may wait on it longer: no 500, no hang, no success
it cannot have had. Continued, it runs what its sockets buffered, so a call whose caller already had its 503
may still take effect; nothing the API acknowledged may be lost, nothing oversold, and reconcile must exit 0.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest
import redis
import sqlalchemy as sa

from engine import Engine
from shared.settings import load
from tests.faults.conftest import StartRedis
from tests.faults.harness import SECONDS, Background, Outcome, add_products, verify, workload
from tests.faults.processes import Stack
from tests.support.servers import RedisServer

pytestmark = pytest.mark.slow

PRODUCTS = [1, 2, 3, 4]
DEADLINE_SECONDS = load({}).redis_timeout_seconds
"""The default deadline: the stack leaves FLASHSALE_REDIS_TIMEOUT_SECONDS unset."""
ANSWER_BOUND_SECONDS = DEADLINE_SECONDS + 0.5
STOPPED_SECONDS = 2.5 * DEADLINE_SECONDS
"""Long enough for two waves of requests to start, wait out their whole deadline and be answered meanwhile."""
UNAVAILABLE = "503 engine_unavailable"


def check_hang(outcome: Outcome, load: Background, stopped_at: float, continued_at: float) -> None:
    """Every request in flight while Redis was stopped waited for it at most the bound; none succeeded meanwhile.

    A request's wait on the stopped Redis starts when it was sent, or when Redis stopped if it was sent before
    (what it waited until then was the load's ordinary queueing, not the hang)."""
    during = [
        (started, taken, key)
        for started, taken, key in load.load.tally.answers
        if started < continued_at and started + taken > stopped_at
    ]
    waits = [(started + taken - max(started, stopped_at), key) for started, taken, key in during]
    sent_while_stopped = [(taken, key) for started, taken, key in during if started >= stopped_at]
    unavailable = [taken for taken, key in sent_while_stopped if key == UNAVAILABLE]
    longest = max((wait for wait, _ in waits), default=None)
    succeeded = sorted(
        {
            key
            for started, taken, key in during
            if key[0] == "2" and stopped_at <= started < started + taken < continued_at
        }
    )
    outcome.figures.update(
        {
            "deadline_s": DEADLINE_SECONDS,
            "redis_stopped_s": round(continued_at - stopped_at, 1),
            "answers_while_stopped": len(during),
            "answers_503_while_stopped": sum(key == UNAVAILABLE for _, _, key in during),
            "slowest_503_s": round(max(unavailable), 3) if unavailable else None,
            "longest_wait_on_stopped_redis_s": round(longest, 3) if longest is not None else None,
        }
    )
    if not unavailable:
        outcome.problems.append("no request sent while Redis was stopped was answered 503")
    if longest is not None and longest > ANSWER_BOUND_SECONDS:
        late = sorted((round(wait, 2), key) for wait, key in waits if wait > ANSWER_BOUND_SECONDS)
        outcome.problems.append(
            f"requests waited up to {longest:.2f}s on the stopped Redis (bound {ANSWER_BOUND_SECONDS}s): {late[-10:]}"
        )
    if succeeded:
        outcome.problems.append(f"requests sent and answered while Redis was stopped succeeded: {succeeded}")


def test_redis_stopped_under_load_answers_503_within_the_deadline_and_loses_nothing(
    start_private_redis: StartRedis,
    queue_redis: RedisServer,
    make_stack: Callable[..., Stack],
    db_f: sa.Engine,
) -> None:
    server = start_private_redis("engine")
    stack = make_stack(server.url, queue_redis.url)
    client = redis.Redis.from_url(server.url, socket_timeout=5)
    engine = Engine(client)
    add_products(engine, db_f, PRODUCTS, stock=400)
    api = stack.api()
    stack.scheduler()
    stack.worker()

    with Background(workload([api.url], PRODUCTS, record_answers=True)) as load:
        load.wait_for("paid", 50)
        server.process.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            time.sleep(STOPPED_SECONDS)
        finally:
            server.process.send_signal(signal.SIGCONT)
            continued_at = time.monotonic()
        acknowledged = load.steps("ordered")
        load.wait_for("ordered", acknowledged + 50)
        time.sleep(SECONDS / 2)

    outcome = Outcome(
        "redis_stopped",
        "Redis stopped (SIGSTOP) under load: each request meanwhile a 503 within the deadline + 0.5 s, nothing lost",
    )
    verify(stack, engine, db_f, PRODUCTS, [load.load], outcome, faults=1, allowed_5xx=[UNAVAILABLE])
    check_hang(outcome, load, stopped_at, continued_at)
    client.close()
    outcome.check()
