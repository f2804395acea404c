"""What jobs use, built once per worker process from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
import sqlalchemy as sa

from engine import Engine
from engine.connection import connect
from engine.from_settings import queue_sentinels, sync_engine
from persistence.db import make_engine
from shared import settings as settings_module
from shared.settings import Settings
from workers.deliveries import Policy
from workers.drain import DEFAULT_BATCH_SIZE, DEFAULT_MAX_BATCHES

QUEUE_POOL = 8
"""Connections of a worker's or the scheduler's queue client (RQ takes a few: the blocking pop, heartbeats)."""


@dataclass
class WorkerContext:
    engine: Engine
    db: sa.Engine
    queue_redis: Any
    batch_size: int = DEFAULT_BATCH_SIZE
    max_batches: int = DEFAULT_MAX_BATCHES
    merchant: Policy | None = None
    """Where the merchant's events go; None: the drain records none and nothing is sent."""

    @classmethod
    def from_settings(cls, settings: Settings, *, batch_size: int = DEFAULT_BATCH_SIZE) -> WorkerContext:
        engine = sync_engine(settings, max_connections=8)
        db = make_engine(settings.database_url)
        merchant = Policy.from_settings(settings)
        return cls(engine, db, queue_connection(settings), batch_size, merchant=merchant)

    def close(self) -> None:
        self.engine.redis.close()
        self.queue_redis.close()
        self.db.dispose()


def queue_connection(settings: Settings) -> Any:
    """A plain client for RQ: no socket timeout, since a worker blocks on BLPOP for longer than any. With
    sentinels, the primary they name, found again after a failover (engine.connection)."""
    sentinels = queue_sentinels(settings)
    if sentinels is None:
        return redis.Redis.from_url(settings.queue_redis_url)
    return connect(settings.queue_redis_url, sentinels=sentinels, max_connections=QUEUE_POOL, socket_timeout=None)


_current: WorkerContext | None = None


def install(context: WorkerContext | None) -> None:
    global _current
    _current = context


def current() -> WorkerContext:
    """The installed context; a worker started some other way (``rq worker``) builds one from the environment."""
    if _current is None:
        install(WorkerContext.from_settings(settings_module.load()))
    assert _current is not None
    return _current
