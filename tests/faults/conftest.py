"""Fixtures for fault tests: private Redis servers, a fresh PostgreSQL database per test, and a process stack.

The engine's Redis and the queue's Redis are private ``redis-server`` processes, so a test may SIGKILL and
restart them. The database is a new one on the shared PostgreSQL (``flashsale_test_f_<n>``), dropped after
the test; the PostgreSQL outage test starts a private cluster of its own (tests/faults/postgres.py).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from engine import Engine
from persistence.db import make_engine
from persistence.migrate import upgrade
from tests.conftest import unavailable
from tests.faults.processes import Stack
from tests.support.database import create_database, drop_database, postgres_reachable
from tests.support.servers import RedisServer, start_redis

FAULTS_SERVER_URL = os.environ.get("FLASHSALE_TEST_FAULTS_SERVER_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
"""The PostgreSQL server fault tests create their databases on (never a run's shared ``flashsale_test_<pid>``)."""

_numbers = itertools.count(1)

StartRedis = Callable[..., RedisServer]


@pytest.fixture
def database_url_f() -> Iterator[str]:
    """A new, migrated database ``flashsale_test_f_<pid>_<n>``; dropped afterwards."""
    url = f"{FAULTS_SERVER_URL}/flashsale_test_f_{os.getpid()}_{next(_numbers)}"
    if not postgres_reachable(url):
        unavailable(f"fault tests need PostgreSQL at {FAULTS_SERVER_URL}")
    create_database(url)
    upgrade(url)
    yield url
    drop_database(url)


@pytest.fixture
def db_f(database_url_f: str) -> Iterator[sa.Engine]:
    database = make_engine(database_url_f)
    yield database
    database.dispose()


@pytest.fixture
def start_private_redis(tmp_path: Path) -> Iterator[StartRedis]:
    """Start a redis-server in ``tmp_path/<name>``, with extra arguments; each is stopped afterwards."""
    servers: list[RedisServer] = []

    def start(name: str, *extra: str, port: int | None = None) -> RedisServer:
        server = start_redis(tmp_path / name, *extra, port=port)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def queue_redis(start_private_redis: StartRedis) -> RedisServer:
    return start_private_redis("queue")


@pytest.fixture
def engine_redis(start_private_redis: StartRedis) -> RedisServer:
    return start_private_redis("engine")


@pytest.fixture
def make_stack(tmp_path: Path, database_url_f: str, start_private_redis: StartRedis) -> Iterator[Callable[..., Stack]]:
    """Stacks whose children stop before any private Redis does (this fixture depends on those)."""
    stacks: list[Stack] = []

    def make(redis_url: str, queue_url: str, database_url: str | None = None, **env: str) -> Stack:
        stack = Stack(tmp_path, redis_url, queue_url, database_url or database_url_f, dict(env))
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.close()


@pytest.fixture
def stack(make_stack: Callable[..., Stack], engine_redis: RedisServer, queue_redis: RedisServer) -> Stack:
    return make_stack(engine_redis.url, queue_redis.url)


@pytest.fixture
def engine_f(engine_redis: RedisServer) -> Iterator[Engine]:
    client = redis.Redis.from_url(engine_redis.url, socket_timeout=5)
    yield Engine(client)
    client.close()
