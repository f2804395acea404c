"""Per-client fixed-window rate limits in Redis, shared by every API process: per address, and per verified buyer.

One counter per client (an address, or a buyer token's ``sub``) and second (``INCR`` + ``EXPIRE`` in one round
trip). When Redis does not answer the limit lets requests through: it protects the sale, it must not stop it.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from redis.exceptions import RedisError

from api.errors import ApiError
from api.metrics import RATE_LIMITED
from shared.logs import get_logger

KEY_PREFIX = "fs:ratelimit:"
WARN_EVERY_SECONDS = 10.0
WINDOW_TTL_SECONDS = 2
"""A window's counter outlives its second, then goes."""

log = get_logger("api.ratelimit")


Scope = Literal["address", "buyer"]


class RateLimited(ApiError):
    def __init__(self, limit: int, scope: Scope = "address") -> None:
        super().__init__(
            429,
            "rate_limited",
            f"more than {limit} hold or queue-join requests per second from this {scope}",
            headers={"Retry-After": "1"},
            limit=limit,
        )


class RateLimiter:
    def __init__(self, redis: Any, per_second: int, scope: Scope = "address") -> None:
        self.redis = redis
        self.per_second = per_second
        self.scope = scope
        # Addresses and buyers count apart: a buyer named like an address never shares its counter.
        self.prefix = KEY_PREFIX if scope == "address" else f"{KEY_PREFIX}buyer:"
        self._warned_at = 0.0

    async def check(self, client: str) -> None:
        """Count one request from ``client``; raise RateLimited past the limit for this second."""
        second = int(time.time())
        key = f"{self.prefix}{client}:{second}"
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, WINDOW_TTL_SECONDS)
                count, _ = await pipe.execute()
        except (RedisError, OSError) as error:
            self._warn(error)
            return
        if count > self.per_second:
            RATE_LIMITED.inc()
            raise RateLimited(self.per_second, self.scope)

    def _warn(self, error: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning("rate_limit_unavailable", error=str(error))
