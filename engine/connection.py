"""Redis clients for the engine: bounded pools that block rather than fail under a burst."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

DEFAULT_MAX_CONNECTIONS = 64
DEFAULT_POOL_TIMEOUT = 20.0
SOCKET_TIMEOUT = 5.0


def connect(
    url: str,
    *,
    cluster: bool = False,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    pool_timeout: float = DEFAULT_POOL_TIMEOUT,
) -> Any:
    """A sync client for ``url``: ``RedisCluster`` when ``cluster``, else ``Redis`` on a blocking pool."""
    if cluster:
        return RedisCluster.from_url(
            url, max_connections=max_connections, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=2.0
        )
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=2.0,
    )
    return redis.Redis(connection_pool=pool)


def connect_async(
    url: str,
    *,
    cluster: bool = False,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    pool_timeout: float = DEFAULT_POOL_TIMEOUT,
) -> Any:
    """An asyncio client for ``url``, bounded the same way as ``connect``."""
    if cluster:
        return AsyncRedisCluster.from_url(
            url, max_connections=max_connections, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=2.0
        )
    pool = aredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=2.0,
    )
    return aredis.Redis(connection_pool=pool)
