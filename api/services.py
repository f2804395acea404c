"""What the routes use, built once per application from the settings, and closed with it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from redis.exceptions import RedisError
from starlette.requests import Request

from api.buyer_auth import Buyer, BuyerAuth
from api.catalog_cache import CatalogCache
from api.drain_requests import DrainRequests
from api.ratelimit import RateLimiter
from api.settlement import Settler
from engine import AsyncEngine, Engine
from engine.connection import connect, connect_async
from engine.from_settings import async_engine, queue_sentinels, sync_engine
from persistence.db import make_engine
from shared.logs import get_logger
from shared.settings import Settings
from workers.trigger import DrainTrigger

log = get_logger("api")

ADMIN_POOL_SIZE = 4
QUEUE_POOL_SIZE = 16


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    admin_engine: Engine
    """A synchronous engine for ``put_product``, which runs in a worker thread."""
    db: sa.Engine
    queue: Any
    """An asyncio client on the queue's Redis (readiness, rate limit)."""
    queue_sync: Any
    catalog: CatalogCache
    drain_requests: DrainRequests
    limiter: RateLimiter | None
    settler: Settler
    """Payments, sale-wide (api.settlement)."""
    buyer_auth: BuyerAuth
    """Who the buyer of a request is (FLASHSALE_BUYER_AUTH): ``await buyer_auth.authenticate(request)``."""
    buyer_limiter: RateLimiter | None
    """Holds per second of one verified buyer (FLASHSALE_RATE_LIMIT_PER_BUYER_PER_SECOND, jwt only)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        # One deadline for a request's engine work, wherever it waits (a burst queues, a hang does not),
        # counted from the request's arrival (api.middleware) and enforced by the asyncio engine around each
        # call. The admin's synchronous engine, in a worker thread, is bounded by socket timeouts.
        deadline = settings.redis_timeout_seconds
        engine = async_engine(settings)
        admin_engine = sync_engine(
            settings, max_connections=ADMIN_POOL_SIZE, pool_timeout=deadline, socket_timeout=deadline
        )
        db = make_engine(settings.database_url)
        queue_at = queue_sentinels(settings)
        queue = connect_async(settings.queue_redis_url, sentinels=queue_at, max_connections=QUEUE_POOL_SIZE)
        queue_sync = connect(settings.queue_redis_url, sentinels=queue_at, max_connections=ADMIN_POOL_SIZE)
        limiter = RateLimiter(queue, settings.rate_limit_per_second) if settings.rate_limit_per_second else None
        per_buyer = settings.rate_limit_per_buyer_per_second if settings.buyer_auth == "jwt" else 0
        buyer_limiter = RateLimiter(queue, per_buyer, "buyer") if per_buyer else None
        return cls(
            settings=settings,
            engine=engine,
            admin_engine=admin_engine,
            db=db,
            queue=queue,
            queue_sync=queue_sync,
            catalog=CatalogCache(db),
            drain_requests=DrainRequests(DrainTrigger(queue_sync)),
            limiter=limiter,
            settler=Settler(engine, db, grace_ms=settings.payment_grace_ms),
            buyer_auth=BuyerAuth(settings),
            buyer_limiter=buyer_limiter,
        )

    async def limited_buyer(self, request: Request) -> Buyer | None:
        """The verified buyer of a request that takes stock or a place in a queue (None with buyer tokens off),
        once the rate limits let it through: its address's (429 ``rate_limited``), its token (401), then, with
        tokens, the buyer's own."""
        if self.limiter is not None:
            await self.limiter.check(request.client.host if request.client else "unknown")
        buyer = await self.buyer_auth.authenticate(request)
        if buyer is not None and self.buyer_limiter is not None:
            await self.buyer_limiter.check(buyer.sub)
        return buyer

    async def start(self) -> None:
        await self.buyer_auth.start()
        if self.settings.redis_cluster:
            # redis-py's asyncio cluster client, first used by many requests at once, can hand one of them a
            # connection another is still setting up (AttributeError inside redis-py). Meeting the cluster
            # once before serving avoids it; if the cluster is down now, requests answer 503 until it is up.
            try:
                async with asyncio.timeout(self.settings.redis_timeout_seconds):
                    await self.engine.redis.initialize()
            except (RedisError, OSError) as error:  # OSError: TimeoutError too
                log.warning("engine_unavailable_at_start", error=str(error))

    async def close(self) -> None:
        await self.settler.close()
        await self.drain_requests.close()
        for client in (self.engine.redis, self.queue):
            await client.aclose()
            # A client handed its pool does not own it, so aclose() leaves the pool's connections open.
            if getattr(client, "connection_pool", None) is not None:
                await client.connection_pool.disconnect()
        for client in (self.admin_engine.redis, self.queue_sync):
            client.close()
            if getattr(client, "connection_pool", None) is not None:
                client.connection_pool.disconnect()
        self.db.dispose()


def of(request: Request) -> Services:
    """The services of the application serving ``request``: route handlers are module-level functions (Starlette's
    style), and ``api.app.create_app`` keeps its services in the application's state."""
    services: Services = request.app.state.services
    return services
