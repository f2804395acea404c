"""What both engine clients are built on: the Redis client (a cluster or not), the hold and order TTLs, the registered
scripts."""

from __future__ import annotations

from typing import Any

from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

from engine.replication import Acknowledgement
from engine.scripts import NAMES, source
from shared.settings import DEFAULT_HOLD_TTL_SECONDS, DEFAULT_ORDER_TTL_SECONDS

DEFAULT_HOLD_TTL_MS = DEFAULT_HOLD_TTL_SECONDS * 1000
DEFAULT_ORDER_TTL_MS = DEFAULT_ORDER_TTL_SECONDS * 1000


class EngineBase:
    def __init__(
        self,
        redis: Any,
        *,
        hold_ttl_ms: int = DEFAULT_HOLD_TTL_MS,
        order_ttl_ms: int = DEFAULT_ORDER_TTL_MS,
        ack: Acknowledgement | None = None,
    ) -> None:
        """``ack``: answer each write only once that many replicas have it (engine.replication); None, at once."""
        if hold_ttl_ms < 1 or order_ttl_ms < 1:
            raise ValueError("hold and order TTLs must be positive")
        self.redis = redis
        self.cluster = isinstance(redis, RedisCluster | AsyncRedisCluster)
        """A Redis Cluster client: a script call reaches one hash slot."""
        self.hold_ttl_ms = hold_ttl_ms
        self.order_ttl_ms = order_ttl_ms
        self.ack = ack
        self._scripts = {name: redis.register_script(source(name)) for name in NAMES}
