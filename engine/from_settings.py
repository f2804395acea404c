"""The engines the processes use, built from the settings: the one place that reads where the engine's Redis is."""

from __future__ import annotations

from engine.aio import AsyncEngine
from engine.client import Engine
from engine.connection import DEFAULT_POOL_TIMEOUT, SOCKET_TIMEOUT, connect, connect_async
from shared.settings import Settings


def sync_engine(
    settings: Settings,
    *,
    max_connections: int,
    pool_timeout: float = DEFAULT_POOL_TIMEOUT,
    socket_timeout: float | None = SOCKET_TIMEOUT,
) -> Engine:
    """An ``Engine`` on the settings' Redis (or Redis Cluster), with their hold and order TTLs."""
    client = connect(
        settings.redis_url,
        cluster=settings.redis_cluster,
        max_connections=max_connections,
        pool_timeout=pool_timeout,
        socket_timeout=socket_timeout,
    )
    return Engine(client, hold_ttl_ms=settings.hold_ttl_ms, order_ttl_ms=settings.order_ttl_ms)


def async_engine(settings: Settings) -> AsyncEngine:
    """The API's ``AsyncEngine``: every call ends within ``FLASHSALE_REDIS_TIMEOUT_SECONDS`` (its deadline).

    Its sockets have no timeout of their own, which on Python 3.11 could outlast the deadline (see
    ``connect_async``); the deadline bounds the wait for a pool connection too.
    """
    deadline = settings.redis_timeout_seconds
    client = connect_async(
        settings.redis_url, cluster=settings.redis_cluster, pool_timeout=deadline, socket_timeout=None
    )
    return AsyncEngine(client, timeout=deadline, hold_ttl_ms=settings.hold_ttl_ms, order_ttl_ms=settings.order_ttl_ms)
