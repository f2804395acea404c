"""Redis clients for the engine: bounded pools that block rather than fail under a burst."""

from __future__ import annotations

import asyncio
from typing import Any

import redis
import redis.asyncio as aredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

DEFAULT_MAX_CONNECTIONS = 64
DEFAULT_POOL_TIMEOUT = 20.0
SOCKET_TIMEOUT = 5.0
"""How long one read or write on a Redis socket may wait, unless the caller says otherwise."""
CONNECT_TIMEOUT = 2.0


def _sockets(socket_timeout: float | None) -> dict[str, float | None]:
    connect = CONNECT_TIMEOUT if socket_timeout is None else min(CONNECT_TIMEOUT, socket_timeout)
    return {"socket_timeout": socket_timeout, "socket_connect_timeout": connect}


class ClosingRedisCluster(RedisCluster):
    """A ``RedisCluster`` whose ``close()`` also closes every node's pool.

    redis-py's node clients do not own their pools, so ``RedisCluster.close()`` leaves their sockets
    open until garbage collection.
    """

    def close(self) -> None:
        nodes = list(self.nodes_manager.nodes_cache.values())
        super().close()
        for node in nodes:
            if node.redis_connection is not None:
                node.redis_connection.connection_pool.disconnect()


class BoundedAsyncRedisCluster(AsyncRedisCluster):
    """An asyncio cluster client that waits for a free connection instead of failing.

    redis.asyncio's cluster raises MaxConnectionsError ("Too many connections") once a node's pool
    is full and offers no blocking pool, so commands wait here for one of ``max_connections`` slots.
    """

    def __init__(self, *, max_connections: int = DEFAULT_MAX_CONNECTIONS, **kwargs: Any) -> None:
        super().__init__(max_connections=max_connections, **kwargs)
        self._slots = asyncio.Semaphore(max_connections)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self._slots:
            return await super().execute_command(*args, **kwargs)


def connect(
    url: str,
    *,
    cluster: bool = False,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    pool_timeout: float = DEFAULT_POOL_TIMEOUT,
    socket_timeout: float | None = SOCKET_TIMEOUT,
) -> Any:
    """A sync client for ``url``: ``RedisCluster`` when ``cluster``, else ``Redis``; both on blocking pools.

    A command waits at most ``pool_timeout`` for a connection, then ``socket_timeout`` for each read or write.
    """
    sockets = _sockets(socket_timeout)
    if cluster:
        return ClosingRedisCluster.from_url(
            url,
            connection_pool_class=redis.BlockingConnectionPool,
            max_connections=max_connections,
            timeout=pool_timeout,
            **sockets,
        )
    pool = redis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=pool_timeout, **sockets)
    return redis.Redis.from_pool(pool)  # the client owns the pool: close() releases it


def connect_async(
    url: str,
    *,
    cluster: bool = False,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    pool_timeout: float = DEFAULT_POOL_TIMEOUT,
    socket_timeout: float | None = SOCKET_TIMEOUT,
) -> Any:
    """An asyncio client for ``url``, bounded the same way as ``connect``.

    ``socket_timeout=None`` leaves the bound to the caller's deadline (``AsyncEngine(timeout=)``), as the API
    does: redis-py bounds each write with ``asyncio.wait_for``, which on Python 3.11 can swallow the
    cancellation of a deadline that passes just as the write completes (CPython gh-86296), so that the call
    goes on to wait out the socket timeout instead.
    """
    sockets = _sockets(socket_timeout)
    if cluster:
        return BoundedAsyncRedisCluster.from_url(url, max_connections=max_connections, **sockets)
    pool = aredis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=pool_timeout, **sockets)
    return aredis.Redis.from_pool(pool)
