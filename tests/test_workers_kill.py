"""A worker killed with SIGKILL at the worst moments loses nothing and duplicates nothing.

The worker is a real ``flashsale worker --burst`` subprocess. It is stopped exactly where we want by
holding a database lock its batch needs (so it waits inside its transaction) and by pausing the
Redis writes that acknowledge the batch (so it waits after its commit). Redis is a private server,
since pausing it would stall anyone else's tests.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from engine import Engine
from persistence.db import sqlite_file
from tests.support.database import count_rows, order_statuses
from tests.support.sales import Sale, add_product, place_orders
from tests.support.servers import RedisServer, redis_server

WAITING_FOR_A_LOCK = (
    "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
)
WORKER = [str(Path(sys.executable).with_name("flashsale")), "worker", "--burst"]


LIVENESS_SECONDS = 120.0
"""How long a worker may take to get where a test waits for it: liveness, not speed (a busy machine takes seconds
to start a Python process)."""

StartWorker = Callable[[str, str, Path, int], subprocess.Popen[bytes]]


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture
def start_worker() -> Iterator[StartWorker]:
    """Starts workers; any still running when the test ends (it failed midway) is killed and reaped."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(redis_url: str, database_url: str, tmp_path: Path, batch_size: int) -> subprocess.Popen[bytes]:
        processes.append(spawn_worker(redis_url, database_url, tmp_path, batch_size))
        return processes[-1]

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def spawn_worker(redis_url: str, database_url: str, tmp_path: Path, batch_size: int) -> subprocess.Popen[bytes]:
    """The worker's stderr goes to ``tmp_path/worker.log`` (appended), for the assertion messages."""
    env = {
        **os.environ,
        "FLASHSALE_REDIS_URL": redis_url,
        "FLASHSALE_QUEUE_REDIS_URL": redis_url,
        "FLASHSALE_DATABASE_URL": database_url,
        "FLASHSALE_VAR_DIR": str(tmp_path),
        "FLASHSALE_LOG_FORMAT": "json",
    }
    args = [*WORKER, "--batch-size", str(batch_size)]
    with open(tmp_path / "worker.log", "ab") as log:
        return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=log)


def finish(process: subprocess.Popen[bytes], tmp_path: Path) -> None:
    """Wait for a worker that should exit by itself, successfully."""
    process.wait(LIVENESS_SECONDS)
    assert process.returncode == 0, (tmp_path / "worker.log").read_text()


def kill(process: subprocess.Popen[bytes]) -> None:
    assert process.poll() is None, "the worker finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    assert process.returncode == -signal.SIGKILL


def wait_until(condition: Callable[[], bool], what: str, timeout: float = LIVENESS_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.02)


def outbox_was_read(client: redis.Redis) -> bool:
    return any(c.get("cmd") == "xrange" for c in client.client_list())


@contextmanager
def database_blocked(db: sa.Engine, database_url: str, client: redis.Redis) -> Iterator[Callable[[], None]]:
    """Hold a lock the worker's first write needs; yields a wait-until-the-worker-is-stuck function."""
    path = sqlite_file(database_url)
    if path is not None:
        lock = sqlite3.connect(path, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")

        def stuck() -> None:
            wait_until(lambda: outbox_was_read(client), "the worker read its batch")
            time.sleep(0.5)  # SQLite shows no waiters: give the worker time to reach its INSERT

        try:
            yield stuck
        finally:
            lock.rollback()
            lock.close()
        return
    with db.connect() as connection, connection.begin() as transaction:
        # Inserting an order takes a key-share lock on its product row: FOR UPDATE makes it wait.
        connection.execute(sa.text("SELECT id FROM products WHERE id = 1 FOR UPDATE"))

        def waiting() -> bool:
            with db.connect() as probe:
                return bool(probe.execute(sa.text(WAITING_FOR_A_LOCK)).scalar_one())

        yield lambda: wait_until(waiting, "the worker waits for the product row inside its transaction")
        transaction.rollback()


def assert_exactly_once(db: sa.Engine, engine: Engine, sale: Sale) -> None:
    assert order_statuses(db) == sale.orders
    with db.connect() as connection:
        transactions = connection.execute(sa.text("SELECT transaction_id FROM payments")).scalars().all()
    assert sorted(transactions) == sorted(sale.payments)
    assert engine.outbox_backlog(1) == 0


@pytest.mark.slow
def test_worker_killed_inside_and_after_its_transaction_then_rerun_writes_everything_once(
    private_redis: RedisServer, database_url: str, db: sa.Engine, tmp_path: Path, start_worker: StartWorker
) -> None:
    client = redis.Redis.from_url(private_redis.url)
    engine = Engine(client)
    add_product(engine, db, 1)
    sale = place_orders(engine, 1, 60)
    backlog = engine.outbox_backlog(1)

    # Killed inside its transaction: nothing committed, nothing acknowledged
    with database_blocked(db, database_url, client) as stuck:
        worker = start_worker(private_redis.url, database_url, tmp_path, batch_size=50)
        stuck()
        kill(worker)
    assert count_rows(db, "orders") == 0
    assert engine.outbox_backlog(1) == backlog

    # Killed after its commit, before XDEL: the batch is in PostgreSQL and still in the outbox
    client.client_kill_filter(_type="normal", skipme=True)
    with database_blocked(db, database_url, client) as stuck:
        worker = start_worker(private_redis.url, database_url, tmp_path, batch_size=50)
        stuck()
        # WRITE mode: the XDEL waits, reads go on (unpaused below, as soon as the worker is killed)
        client.client_pause(int(LIVENESS_SECONDS * 2000), all=False)
    try:
        wait_until(lambda: count_rows(db, "orders") > 0, "the first batch committed")
        assert engine.outbox_backlog(1) == backlog
        kill(worker)
    finally:
        client.client_unpause()

    # The rerun re-applies that batch and drains the rest
    finish(start_worker(private_redis.url, database_url, tmp_path, batch_size=50), tmp_path)
    assert_exactly_once(db, engine, sale)


@pytest.mark.slow
def test_workers_killed_at_random_moments_then_rerun_write_everything_once(
    private_redis: RedisServer, database_url: str, db: sa.Engine, tmp_path: Path, start_worker: StartWorker
) -> None:
    client = redis.Redis.from_url(private_redis.url)
    engine = Engine(client)
    add_product(engine, db, 1)
    sale = place_orders(engine, 1, 800)
    start = engine.outbox_backlog(1)
    rng = random.Random(7)

    for _ in range(3):
        committed = count_rows(db, "orders")
        worker = start_worker(private_redis.url, database_url, tmp_path, batch_size=20)
        # Killed at a random moment once it is draining for real (a batch of this round committed), however long a
        # busy machine takes to get it there: the kill lands mid-drain, not before the first batch.
        wait_until(
            lambda w=worker, n=committed: count_rows(db, "orders") > n or w.poll() is not None,
            "the worker committed a batch",
        )
        time.sleep(rng.uniform(0.0, 0.3))
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
        client.client_kill_filter(_type="normal", skipme=True)
    assert engine.outbox_backlog(1) < start

    finish(start_worker(private_redis.url, database_url, tmp_path, batch_size=20), tmp_path)
    assert_exactly_once(db, engine, sale)
