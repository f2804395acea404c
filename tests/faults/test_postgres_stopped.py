"""Fault 4: PostgreSQL stops under load (a private cluster, never the shared server) and comes back.

Holds, orders and payments go on through Redis, the outbox grows, /readyz names the database as down;
once PostgreSQL is back the running worker drains the backlog to zero and nothing is missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from engine import Engine
from persistence.db import make_engine
from persistence.migrate import upgrade
from tests.conftest import unavailable
from tests.faults import postgres
from tests.faults.harness import SECONDS, Background, Outcome, add_products, verify, workload
from tests.faults.processes import Stack
from tests.support.database import create_database
from tests.support.servers import RedisServer

pytestmark = pytest.mark.slow

PRODUCTS = [1, 2, 3, 4]
DOWN_SECONDS = 4.0
WORKING = ("held", "ordered", "paid")


@pytest.fixture
def cluster() -> Iterator[postgres.PrivatePostgres]:
    reason = postgres.available()
    if reason is not None:
        unavailable(f"no private PostgreSQL cluster: {reason}")
    with postgres.private_postgres() as server:
        yield server


def backlog(engine: Engine) -> int:
    return sum(engine.outbox_backlog(product_id) for product_id in PRODUCTS)


def test_postgres_stopped_under_load_then_back_drains_everything(
    cluster: postgres.PrivatePostgres,
    engine_redis: RedisServer,
    queue_redis: RedisServer,
    make_stack: Callable[..., Stack],
    engine_f: Engine,
) -> None:
    url = cluster.url("flashsale")
    create_database(url)
    upgrade(url)
    db = make_engine(url)
    add_products(engine_f, db, PRODUCTS, stock=400)
    stack = make_stack(engine_redis.url, queue_redis.url, url)
    api = stack.api()
    stack.scheduler()
    stack.worker()
    readiness: list[tuple[int, dict[str, str], float]] = []

    with Background(workload([api.url], PRODUCTS)) as load, httpx.Client(base_url=api.url, timeout=10) as http:
        load.wait_for("paid", 50)
        db.dispose()
        cluster.stop("immediate")
        stopped_backlog, stopped_steps = backlog(engine_f), {s: load.steps(s) for s in WORKING}
        deadline = time.monotonic() + DOWN_SECONDS
        while time.monotonic() < deadline:
            started = time.monotonic()
            ready = http.get("/readyz")
            readiness.append((ready.status_code, ready.json().get("checks", {}), time.monotonic() - started))
            time.sleep(0.5)
        down_backlog, down_steps = backlog(engine_f), {s: load.steps(s) - stopped_steps[s] for s in WORKING}
        cluster.start()
        time.sleep(SECONDS / 3)

    outcome = Outcome(
        "postgres_stopped",
        "PostgreSQL stopped under load: the sale goes on, the outbox grows, then drains to zero with nothing missing",
    )
    verify(stack, engine_f, db, PRODUCTS, [load.load], outcome, faults=1)
    outcome.figures.update(
        {
            "database_down_s": DOWN_SECONDS,
            "acknowledged_while_down": down_steps,
            "backlog_when_stopped": stopped_backlog,
            "backlog_before_restart": down_backlog,
            "readyz_while_down": sorted(
                {f"{status} database={checks.get('database')}" for status, checks, _ in readiness}
            ),
            "slowest_readyz_s": round(max(taken for _, _, taken in readiness), 2),
        }
    )
    problems = outcome.problems
    for step, count in down_steps.items():
        if count == 0:
            problems.append(f"no {step} acknowledged while PostgreSQL was down")
    if down_backlog <= stopped_backlog:
        problems.append(f"the outbox did not grow while PostgreSQL was down ({stopped_backlog} -> {down_backlog})")
    not_down = [
        (status, checks) for status, checks, _ in readiness if status != 503 or checks.get("database") != "down"
    ]
    if not readiness or not_down:
        problems.append(f"/readyz did not report the database down every time: {not_down[:3]}")
    if any(checks.get("engine") != "ok" for _, checks, _ in readiness):
        problems.append("/readyz reported the engine down while only PostgreSQL was")
    db.dispose()
    outcome.check()
