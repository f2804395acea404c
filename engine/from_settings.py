"""The engines the processes use, built from the settings: the one place that reads where the engine's Redis is."""

from __future__ import annotations

from engine.aio import AsyncEngine
from engine.client import Engine
from engine.connection import DEFAULT_POOL_TIMEOUT, SOCKET_TIMEOUT, Sentinels, connect, connect_async
from engine.replication import Acknowledgement, acknowledgement
from shared.settings import Settings


def engine_sentinels(settings: Settings) -> Sentinels | None:
    """The sentinels that name the engine's primary (FLASHSALE_REDIS_SENTINELS), or None: the URL is the server."""
    return Sentinels.of(settings.redis_sentinels, settings.redis_sentinel_service)


def queue_sentinels(settings: Settings) -> Sentinels | None:
    """The same for the queue's Redis (the engine's, unless FLASHSALE_QUEUE_REDIS_URL or its own are set)."""
    return Sentinels.of(settings.queue_redis_sentinels, settings.queue_redis_sentinel_service)


def engine_acknowledgement(settings: Settings) -> Acknowledgement | None:
    """FLASHSALE_REDIS_ACK_REPLICAS and _TIMEOUT_MS: how many replicas a write waits for, and how long."""
    return acknowledgement(settings.redis_ack_replicas, settings.redis_ack_timeout_ms)


def sync_engine(
    settings: Settings,
    *,
    max_connections: int,
    pool_timeout: float = DEFAULT_POOL_TIMEOUT,
    socket_timeout: float | None = SOCKET_TIMEOUT,
) -> Engine:
    """An ``Engine`` on the settings' Redis (a server, a Redis Cluster, or the primary Sentinel names), with their
    hold and order TTLs and replicated acknowledgement."""
    client = connect(
        settings.redis_url,
        cluster=settings.redis_cluster,
        sentinels=engine_sentinels(settings),
        max_connections=max_connections,
        pool_timeout=pool_timeout,
        socket_timeout=socket_timeout,
    )
    return Engine(
        client,
        hold_ttl_ms=settings.hold_ttl_ms,
        order_ttl_ms=settings.order_ttl_ms,
        ack=engine_acknowledgement(settings),
    )


def async_engine(settings: Settings) -> AsyncEngine:
    """The API's ``AsyncEngine``: every call ends within ``FLASHSALE_REDIS_TIMEOUT_SECONDS`` (its deadline).

    Its sockets have no timeout of their own, which on Python 3.11 could outlast the deadline (see
    ``connect_async``); the deadline bounds the wait for a pool connection too.
    """
    deadline = settings.redis_timeout_seconds
    client = connect_async(
        settings.redis_url,
        cluster=settings.redis_cluster,
        sentinels=engine_sentinels(settings),
        pool_timeout=deadline,
        socket_timeout=None,
    )
    return AsyncEngine(
        client,
        timeout=deadline,
        hold_ttl_ms=settings.hold_ttl_ms,
        order_ttl_ms=settings.order_ttl_ms,
        ack=engine_acknowledgement(settings),
    )
