"""Redis clients for the engine and the queue: bounded pools that block rather than fail under a burst.

A client reaches one Redis by its URL, a Redis Cluster (``cluster=True``), or the primary that Redis
Sentinel names (``sentinels=``): redis-py's ``Sentinel.master_for`` asks the sentinels for the primary
before each new connection, and drops the connections to a primary that Sentinel no longer names, so
that after a failover the client reaches the new primary by itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aredis
import redis.asyncio.sentinel as asentinel
import redis.sentinel
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster
from redis.connection import parse_url

DEFAULT_MAX_CONNECTIONS = 64
DEFAULT_POOL_TIMEOUT = 20.0
SOCKET_TIMEOUT = 5.0
"""How long one read or write on a Redis socket may wait, unless the caller says otherwise."""
CONNECT_TIMEOUT = 2.0
SENTINEL_TIMEOUT = 1.0
"""How long a question to one sentinel may take (connect, then answer) before the next sentinel is asked."""
DEFAULT_SERVICE = "flashsale"


@dataclass(frozen=True, slots=True)
class Sentinels:
    """The sentinels to ask for the primary of ``service`` (its ``sentinel monitor`` name)."""

    addresses: tuple[tuple[str, int], ...]
    service: str = DEFAULT_SERVICE

    def __post_init__(self) -> None:
        if not self.addresses:
            raise ValueError("at least one sentinel address is needed")
        if not self.service:
            raise ValueError("the sentinel service name must not be empty")

    @classmethod
    def of(cls, addresses: Sequence[tuple[str, int]], service: str = DEFAULT_SERVICE) -> Sentinels | None:
        """The setting as ``connect`` takes it: None (use the URL) when no sentinel is given."""
        return cls(tuple(addresses), service) if addresses else None


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
        self.slots = asyncio.Semaphore(max_connections)
        """Held while a command uses a connection (engine.replication takes it too, for its own trips)."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.slots:
            return await super().execute_command(*args, **kwargs)


class BlockingSentinelConnectionPool(redis.sentinel.SentinelConnectionPool, redis.BlockingConnectionPool):
    """Sentinel's pool (connections to whichever primary Sentinel names), blocking as ``BlockingConnectionPool``."""


class AsyncBlockingSentinelConnectionPool(asentinel.SentinelConnectionPool, aredis.BlockingConnectionPool):
    """The asyncio twin of ``BlockingSentinelConnectionPool``."""


class SentinelRedis(redis.Redis):
    """A client of the primary that Sentinel names; ``close()`` also closes its connections to the sentinels."""

    def close(self) -> None:
        manager = getattr(self.connection_pool, "sentinel_manager", None)
        super().close()
        if manager is not None:
            manager.close()


class AsyncSentinelRedis(aredis.Redis):
    """The asyncio twin of ``SentinelRedis``."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        manager = getattr(self.connection_pool, "sentinel_manager", None)
        await super().aclose(close_connection_pool)
        if manager is not None:
            for sentinel in manager.sentinels:
                await sentinel.aclose()


def _primary_kwargs(url: str) -> dict[str, Any]:
    """What ``url`` says about the primary besides where it is (Sentinel says that): db, credentials, TLS."""
    kwargs = parse_url(url)  # type: ignore[no-untyped-call]
    if "path" in kwargs:
        raise ValueError("a unix socket URL cannot name a primary that Sentinel finds; use redis:// or rediss://")
    ssl = kwargs.pop("connection_class", None) is not None  # rediss:// asks for SSLConnection
    for where in ("host", "port"):
        kwargs.pop(where, None)
    return {**kwargs, "ssl": True} if ssl else kwargs


def _sentinel_kwargs() -> dict[str, float]:
    return {"socket_timeout": SENTINEL_TIMEOUT, "socket_connect_timeout": SENTINEL_TIMEOUT}


def connect(
    url: str,
    *,
    cluster: bool = False,
    sentinels: Sentinels | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    pool_timeout: float = DEFAULT_POOL_TIMEOUT,
    socket_timeout: float | None = SOCKET_TIMEOUT,
) -> Any:
    """A sync client: ``RedisCluster`` when ``cluster``; the primary ``sentinels`` name (the URL then gives only
    the database, credentials and TLS); else ``Redis`` at ``url``. All on blocking pools.

    A command waits at most ``pool_timeout`` for a connection, then ``socket_timeout`` for each read or write.
    """
    sockets = _sockets(socket_timeout)
    if sentinels is not None:
        if cluster:
            raise ValueError("Redis Cluster fails over by itself: sentinels are for a primary with replicas")
        addresses = list(sentinels.addresses)
        manager = redis.sentinel.Sentinel(addresses, sentinel_kwargs=_sentinel_kwargs())  # type: ignore[no-untyped-call]
        return manager.master_for(  # type: ignore[no-untyped-call]
            sentinels.service,
            redis_class=SentinelRedis,
            connection_pool_class=BlockingSentinelConnectionPool,
            max_connections=max_connections,
            timeout=pool_timeout,
            **sockets,
            **_primary_kwargs(url),
        )
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
    sentinels: Sentinels | None = None,
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
    if sentinels is not None:
        if cluster:
            raise ValueError("Redis Cluster fails over by itself: sentinels are for a primary with replicas")
        manager = asentinel.Sentinel(list(sentinels.addresses), sentinel_kwargs=_sentinel_kwargs())  # type: ignore[no-untyped-call]
        return manager.master_for(
            sentinels.service,
            redis_class=AsyncSentinelRedis,
            connection_pool_class=AsyncBlockingSentinelConnectionPool,
            max_connections=max_connections,
            timeout=pool_timeout,
            **sockets,
            **_primary_kwargs(url),
        )
    if cluster:
        return BoundedAsyncRedisCluster.from_url(url, max_connections=max_connections, **sockets)
    pool = aredis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=pool_timeout, **sockets)
    return aredis.Redis.from_pool(pool)
