"""The worker process and its jobs: drain on request, reap on schedule, queue apart from a cluster engine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
import structlog
from rq import Queue, Worker

from engine import Engine
from engine.connection import connect
from shared import logs, settings
from tests.support.database import count_rows, order_statuses
from tests.support.sales import add_product, place_orders
from workers import jobs
from workers.context import WorkerContext, install
from workers.queues import QUEUE_NAME
from workers.run import run_worker
from workers.trigger import DrainTrigger

FLASHSALE = str(Path(sys.executable).with_name("flashsale"))


def config(redis_url: str, database_url: str, **env: str) -> settings.Settings:
    urls = {"FLASHSALE_REDIS_URL": redis_url, "FLASHSALE_DATABASE_URL": database_url}
    return settings.load({**urls, "FLASHSALE_VAR_DIR": "/nowhere", **env})


@pytest.fixture
def installed(real_engine: Engine, db: sa.Engine, real_redis: redis.Redis) -> Iterator[WorkerContext]:
    context = WorkerContext(real_engine, db, real_redis)
    install(context)
    yield context
    install(None)


def test_burst_worker_runs_the_requested_drain_and_exits(
    redis_url: str, database_url: str, real_engine: Engine, db: sa.Engine, real_redis: redis.Redis
) -> None:
    add_product(real_engine, db, 1)
    sale = place_orders(real_engine, 1, 9)
    DrainTrigger(real_redis).request()

    run_worker(config(redis_url, database_url), burst=True)

    assert order_statuses(db) == sale.orders
    assert real_engine.outbox_backlog(1) == 0
    assert len(Queue(QUEUE_NAME, connection=real_redis)) == 0


def test_burst_worker_drains_even_when_no_job_was_queued(
    redis_url: str, database_url: str, real_engine: Engine, db: sa.Engine
) -> None:
    add_product(real_engine, db, 1)
    sale = place_orders(real_engine, 1, 5)

    run_worker(config(redis_url, database_url), burst=True, batch_size=2)

    assert order_statuses(db) == sale.orders


def test_drain_job_clears_the_request_so_later_writes_ask_again(
    installed: WorkerContext, real_redis: redis.Redis
) -> None:
    trigger = DrainTrigger(real_redis, debounce=0)
    assert trigger.request()
    assert not trigger.request()

    jobs.drain()

    assert trigger.request()


def test_reap_job_expires_overdue_holds_and_orders_then_drains_and_logs_them(
    installed: WorkerContext, real_redis: redis.Redis, db: sa.Engine
) -> None:
    quick_holds, quick_orders = Engine(real_redis, hold_ttl_ms=1), Engine(real_redis, order_ttl_ms=1)
    add_product(installed.engine, db, 1, stock=10)
    add_product(installed.engine, db, 2, stock=10)
    quick_holds.reserve(1, 3, customer_id="c")
    order = quick_orders.convert(quick_orders.reserve(2, 2).hold_id)
    time.sleep(0.01)

    with structlog.testing.capture_logs() as logged:
        result = jobs.reap()

    assert (result["holds_expired"], result["orders_expired"]) == (1, 1)
    assert order_statuses(db) == {order.order_id: "cancelled"}
    assert [installed.engine.snapshot(p).available for p in (1, 2)] == [10, 10]
    tags = sorted(e["event"] for e in logged if e["event"] in (logs.HOLD_EXPIRED, logs.ORDER_CANCELLED))
    assert tags == sorted([logs.HOLD_EXPIRED, logs.ORDER_CANCELLED])


def test_a_drain_that_runs_out_of_budget_asks_for_another(
    installed: WorkerContext, real_redis: redis.Redis, db: sa.Engine
) -> None:
    installed.batch_size, installed.max_batches = 2, 1
    add_product(installed.engine, db, 1)
    place_orders(installed.engine, 1, 3)

    jobs.drain()

    assert len(Queue(QUEUE_NAME, connection=real_redis)) == 1
    assert count_rows(db, "orders") == 1


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLASHSALE, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False
    )


def test_worker_refuses_a_cluster_engine_without_a_queue_redis_in_one_line() -> None:
    done = run_cli("worker", "--burst", FLASHSALE_REDIS_CLUSTER="1", FLASHSALE_QUEUE_REDIS_URL="")

    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "FLASHSALE_QUEUE_REDIS_URL" in done.stderr


def test_worker_reports_an_unreachable_redis_in_one_line(database_url: str) -> None:
    nowhere = "redis://127.0.0.1:1/0"
    done = run_cli("worker", "--burst", FLASHSALE_REDIS_URL=nowhere, FLASHSALE_DATABASE_URL=database_url)

    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0, done.stderr


@pytest.mark.cluster
def test_worker_drains_a_cluster_engine_with_the_queue_on_plain_redis(
    cluster_url: str, redis_url: str, database_url: str, db: sa.Engine, real_redis: redis.Redis
) -> None:
    client = connect(cluster_url, cluster=True)
    client.flushdb(target_nodes=client.PRIMARIES)
    engine = Engine(client)
    sale = place_orders_on(engine, db, products=(1, 2, 3))
    DrainTrigger(real_redis).request()

    cluster = config(cluster_url, database_url, FLASHSALE_REDIS_CLUSTER="1", FLASHSALE_QUEUE_REDIS_URL=redis_url)
    run_worker(cluster, burst=True)

    assert order_statuses(db) == sale
    assert [engine.outbox_backlog(p) for p in (1, 2, 3)] == [0, 0, 0]
    client.flushdb(target_nodes=client.PRIMARIES)
    client.close()


def place_orders_on(engine: Engine, db: sa.Engine, products: tuple[int, ...]) -> dict[str, str]:
    statuses: dict[str, str] = {}
    for product_id in products:
        add_product(engine, db, product_id)
        statuses.update(place_orders(engine, product_id, 4).orders)
    return statuses


def test_an_idle_worker_stops_on_sigterm_and_does_not_start_again(
    redis_url: str, database_url: str, real_redis: redis.Redis, tmp_path: Path
) -> None:
    urls = {"FLASHSALE_REDIS_URL": redis_url, "FLASHSALE_DATABASE_URL": database_url}
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen([FLASHSALE, "worker"], env={**os.environ, **urls}, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 30
        # Idle: waiting for a job, its signal handlers installed (RQ marks it idle only then).
        while not any(w.get_state() == "idle" for w in Worker.all(connection=real_redis)):
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"the worker never got idle:\n{log.read_text()}"
            time.sleep(0.05)

        worker.send_signal(signal.SIGTERM)
        returncode = worker.wait(timeout=30)  # a guard against a hang: it must end by itself, not by SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()

    output = log.read_text()
    assert returncode == 0, output
    assert "worker_restarting" not in output
    assert "worker_stopped" in output
