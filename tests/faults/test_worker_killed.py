"""Fault 1: the RQ worker is killed with SIGKILL in the middle of a drain, several times, under load."""

from __future__ import annotations

import random
import time

import pytest
import sqlalchemy as sa

from engine import Engine
from tests.faults.harness import SECONDS, Background, Outcome, add_products, verify, workload
from tests.faults.processes import Stack, wait_until

pytestmark = pytest.mark.slow

PRODUCTS = [1, 2, 3, 4]
KILLS = 4
BUSY_WAIT_SECONDS = 30.0
"""How long a kill waits to catch the worker inside a drain job (the load runs on meanwhile)."""


def test_worker_killed_mid_drain_loses_and_duplicates_nothing(stack: Stack, engine_f: Engine, db_f: sa.Engine) -> None:
    add_products(engine_f, db_f, PRODUCTS, stock=400)
    api = stack.api()
    stack.scheduler()
    worker = stack.worker()
    rng = random.Random(11)
    kills_while_busy = 0

    with Background(workload([api.url], PRODUCTS)) as load:
        started = time.monotonic()
        for kill in range(KILLS):
            # Spread over the run, each as soon as the worker is seen inside a drain job.
            wait_until(lambda k=kill: time.monotonic() >= started + SECONDS * (k + 0.5) / KILLS, "the next kill", 60)
            try:
                # A new worker takes seconds to start on a busy machine; then drains come every second or sooner.
                wait_until(lambda w=worker: stack.busy_worker(w), "the worker is draining", BUSY_WAIT_SECONDS, 0.005)
                kills_while_busy += 1
            except AssertionError:
                pass  # killed anyway: the outcome must be the same
            time.sleep(rng.uniform(0, 0.01))
            worker.kill()
            time.sleep(0.5)  # the outbox grows while no worker runs: the next one starts with a backlog
            worker = stack.worker(f"worker-{kill + 2}")
        wait_until(lambda: time.monotonic() >= started + SECONDS, "the load ran its course", SECONDS + 30, 0.1)

    outcome = Outcome("worker_killed", "A worker killed with kill -9 mid-drain loses and duplicates nothing")
    verify(stack, engine_f, db_f, PRODUCTS, [load.load], outcome, faults=KILLS)
    outcome.figures["kills_while_busy"] = kills_while_busy
    if kills_while_busy < KILLS // 2:
        outcome.problems.append(f"only {kills_while_busy} of {KILLS} kills caught the worker in a job")
    outcome.check()
