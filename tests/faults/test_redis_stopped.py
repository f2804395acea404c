"""Fault 6: the engine's Redis hangs (SIGSTOP) under load, then continues (SIGCONT).

A stopped Redis accepts connections and never answers. Every request sent while it is stopped must be
answered 503 ``engine_unavailable`` within the deadline (``FLASHSALE_REDIS_TIMEOUT_SECONDS``, 2 s by default)
plus 0.5 s, queued ones included, and no request in flight may wait on it longer: no 500, no hang, no success
it cannot have had. Continued, it runs what its sockets buffered, so a call whose caller already had its 503
may still take effect; nothing the API acknowledged may be lost, nothing oversold, and reconcile must exit 0.

The bound is measured where the machine's load does not blur it: by a probe client in a process of its own
(one request at a time, ``tests/faults/probe.py``), end to end, and by the API itself (its request-duration
histogram: no request, the load's included, spent longer in it). The 200 load clients share one event loop
in the test process, whose lag on a busy machine would be counted as the server's; their waits are reported.
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
from tests.faults.probe import Answer, Probe, answered_slower_than
from tests.faults.processes import Stack
from tests.support.servers import RedisServer

pytestmark = pytest.mark.slow

PRODUCTS = [1, 2, 3, 4]
PROBE_PRODUCT = 5
"""The probe's holds (abandoned, they expire) take none of the load's stock."""
DEADLINE_SECONDS = load({}).redis_timeout_seconds
"""The default deadline: the stack leaves FLASHSALE_REDIS_TIMEOUT_SECONDS unset."""
ANSWER_BOUND_SECONDS = DEADLINE_SECONDS + 0.5
STOPPED_SECONDS = 2.5 * DEADLINE_SECONDS
"""Long enough for two waves of requests to start, wait out their whole deadline and be answered meanwhile."""
UNAVAILABLE = "503 engine_unavailable"


def waits_on_stopped_redis(answers: list[Answer], stopped_at: float, continued_at: float) -> list[tuple[float, str]]:
    """(seconds waited on the stopped Redis, answer) of each request in flight while it was stopped: counted from
    when it was sent, or from the stop if it was sent before (what it waited until then was ordinary queueing)."""
    return [
        (started + taken - max(started, stopped_at), key)
        for started, taken, key in answers
        if started < continued_at and started + taken > stopped_at
    ]


def check_probe(outcome: Outcome, answers: list[Answer], stopped_at: float, continued_at: float) -> None:
    """The probe's requests met the bound, and those sent while Redis was stopped were refused."""
    waits = waits_on_stopped_redis(answers, stopped_at, continued_at)
    sent_while_stopped = [
        (taken, key) for started, taken, key in answers if stopped_at <= started and started + taken < continued_at
    ]
    longest = max((wait for wait, _ in waits), default=None)
    outcome.figures.update(
        {
            "probe_answers_while_stopped": len(sent_while_stopped),
            "probe_longest_wait_s": round(longest, 3) if longest is not None else None,
        }
    )
    if not any(key == UNAVAILABLE for _, key in sent_while_stopped):
        outcome.problems.append("no probe request sent while Redis was stopped was answered 503")
    if any(key != UNAVAILABLE for _, key in sent_while_stopped):
        outcome.problems.append(f"the probe's requests while Redis was stopped: {sent_while_stopped}")
    late = sorted((round(wait, 2), key) for wait, key in waits if wait > ANSWER_BOUND_SECONDS)
    if late:
        outcome.problems.append(f"the probe waited longer than {ANSWER_BOUND_SECONDS}s on the stopped Redis: {late}")


def check_load(outcome: Outcome, load: Background, stopped_at: float, continued_at: float, slow: float) -> None:
    """No load request sent while Redis was stopped succeeded, some were refused, and the API answered none of
    them (nor any other request) in more than the bound; ``slow`` is the API's count of such answers."""
    during = [
        (started, taken, key)
        for started, taken, key in load.load.tally.answers
        if started < continued_at and started + taken > stopped_at
    ]
    waits = waits_on_stopped_redis(load.load.tally.answers, stopped_at, continued_at)
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
            "api_answers_slower_than_bound": slow,
        }
    )
    if not unavailable:
        outcome.problems.append("no request sent while Redis was stopped was answered 503")
    if slow:
        outcome.problems.append(
            f"the API answered {slow:g} requests in more than {ANSWER_BOUND_SECONDS}s (by its own clock) around "
            f"the stop; the load's clients saw waits up to {longest}s"
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
    add_products(engine, db_f, [*PRODUCTS, PROBE_PRODUCT], stock=400)
    api = stack.api()
    stack.scheduler()
    stack.worker()

    with Background(workload([api.url], PRODUCTS, record_answers=True)) as load:
        load.wait_for("paid", 50)
        slow_before = answered_slower_than(api.url, ANSWER_BOUND_SECONDS)
        with Probe(api.url, PROBE_PRODUCT) as probe:
            server.process.send_signal(signal.SIGSTOP)
            stopped_at = time.monotonic()
            try:
                time.sleep(STOPPED_SECONDS)
            finally:
                server.process.send_signal(signal.SIGCONT)
                continued_at = time.monotonic()
            acknowledged = load.steps("ordered")
            load.wait_for("ordered", acknowledged + 50)
            probed = probe.answers()
        slow = answered_slower_than(api.url, ANSWER_BOUND_SECONDS) - slow_before
        time.sleep(SECONDS / 2)

    outcome = Outcome(
        "redis_stopped",
        "Redis stopped (SIGSTOP) under load: each request meanwhile a 503 within the deadline + 0.5 s, nothing lost",
    )
    verify(stack, engine, db_f, PRODUCTS, [load.load], outcome, faults=1, allowed_5xx=[UNAVAILABLE])
    check_load(outcome, load, stopped_at, continued_at, slow)
    check_probe(outcome, probed, stopped_at, continued_at)
    client.close()
    outcome.check()
