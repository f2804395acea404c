"""Fault 2: the API process is killed with SIGKILL under load, then started again on the same port."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from engine import Engine
from tests.faults.harness import SECONDS, Background, Outcome, add_products, verify, workload
from tests.faults.processes import Stack, wait_until

pytestmark = pytest.mark.slow

PRODUCTS = [1, 2, 3, 4]
KILLS = 2


def test_api_killed_under_load_loses_nothing_it_acknowledged(stack: Stack, engine_f: Engine, db_f: sa.Engine) -> None:
    add_products(engine_f, db_f, PRODUCTS, stock=400)
    api = stack.api()
    stack.scheduler()
    stack.worker()
    downtime = 0.0

    with Background(workload([api.url], PRODUCTS)) as load:
        started = time.monotonic()
        for kill in range(KILLS):
            due = started + downtime + SECONDS * (kill + 0.4) / KILLS
            wait_until(lambda t=due: time.monotonic() >= t, "the next kill", 60)
            acknowledged = load.steps("ordered")
            killed = time.monotonic()
            api.kill()
            time.sleep(0.5)
            api = stack.restart_api(api)
            downtime += time.monotonic() - killed
            load.wait_for("ordered", acknowledged + 20)  # the restarted process serves the same clients
        end = started + SECONDS + downtime
        wait_until(lambda: time.monotonic() >= end, "the load ran its course", SECONDS + 60, 0.1)

    outcome = Outcome("api_killed", "An API process killed with kill -9 loses nothing it acknowledged")
    verify(stack, engine_f, db_f, PRODUCTS, [load.load], outcome, faults=KILLS)
    no_answer = sum(load.load.tally.transport_errors.values())
    outcome.figures["requests_without_answer"] = no_answer
    outcome.figures["downtime_s"] = round(downtime, 1)
    if no_answer == 0:
        outcome.problems.append("no request was cut off: the kill did not happen under load")
    outcome.check()
