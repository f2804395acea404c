"""What the sync and asyncio engines share: settings, script registration, error translation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from redis import exceptions as redis_errors

from engine import calls
from engine.exceptions import EngineUnavailable
from engine.scripts import NAMES, source
from engine.types import ReserveRequest

DEFAULT_HOLD_TTL_MS = 120_000
DEFAULT_ORDER_TTL_MS = 900_000

UNAVAILABLE: tuple[type[Exception], ...] = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ClusterDownError,
    redis_errors.TryAgainError,
    redis_errors.MasterDownError,
    OSError,
)


@contextmanager
def unavailable_as_engine_error() -> Iterator[None]:
    """Turn driver connection failures into EngineUnavailable at the engine's boundary."""
    try:
        yield
    except UNAVAILABLE as error:
        raise EngineUnavailable(f"Redis is unavailable: {error}") from error


def prepare(product_id: int, requests: Sequence[ReserveRequest]) -> list[calls.PreparedReserve]:
    """Check every request of a batch before any is sent: one bad argument refuses the whole call."""
    return [
        calls.reserve_request(
            product_id,
            r.quantity,
            customer_id=r.customer_id,
            hold_id=r.hold_id,
            idempotency_key=r.idempotency_key,
        )
        for r in requests
    ]


class EngineBase:
    def __init__(
        self,
        redis: Any,
        *,
        hold_ttl_ms: int = DEFAULT_HOLD_TTL_MS,
        order_ttl_ms: int = DEFAULT_ORDER_TTL_MS,
    ) -> None:
        if hold_ttl_ms < 1 or order_ttl_ms < 1:
            raise ValueError("hold and order TTLs must be positive")
        self.redis = redis
        self.hold_ttl_ms = hold_ttl_ms
        self.order_ttl_ms = order_ttl_ms
        self._scripts = {name: redis.register_script(source(name)) for name in NAMES}
