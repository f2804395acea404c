"""The Starlette application: ``create_app()`` for uvicorn (``--factory``) and for tests."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware

from api.errors import EXCEPTION_HANDLERS
from api.feed import Feed
from api.middleware import Observe
from api.routes import admin, dashboard, demo_provider, health, holds, orders, pages, payments, products, queue
from api.services import Services
from shared import logs
from shared.settings import Settings, load

log = logs.get_logger("api")

_logs_configured = False

ROUTES = [
    *holds.routes,
    *orders.routes,
    *payments.routes,
    *products.routes,
    *queue.routes,
    *admin.routes,
    *health.routes,
    *dashboard.routes,
    *demo_provider.routes,
    *pages.routes,
]
"""Every route; each handler is a module-level function that finds what it uses in ``request.app.state``."""


def _configure_logs(settings: Settings) -> None:
    """Once per process: loggers already in use keep the configuration they first saw."""
    global _logs_configured
    if not _logs_configured:
        logs.configure(settings.log_format)
        _logs_configured = True


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load()
    _configure_logs(settings)
    services = Services.from_settings(settings)
    feed = Feed(services.engine, services.admin_engine, services.db, services.catalog)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await services.start()
        log.info(
            "api_started",
            cluster=settings.redis_cluster,
            hold_ttl_s=settings.hold_ttl_seconds,
            order_ttl_s=settings.order_ttl_seconds,
            admin=settings.admin_token is not None,
            webhooks=settings.webhook_secret is not None,
            rate_limit_per_second=settings.rate_limit_per_second,
        )
        try:
            yield
        finally:
            await feed.close()
            await services.close()

    app = Starlette(
        routes=ROUTES,
        middleware=[Middleware(Observe, engine_deadline=settings.redis_timeout_seconds)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.feed = feed
    return app


YOUNG_GC_THRESHOLD = 20_000
"""Allocations between two collections of the youngest generation (Python's default: 700). Under load, 50 holds in
flight keep thousands of young objects alive (tasks, futures, scopes); at 700 each collection scanned them again and
promoted them, feeding the older generations' collections: the server's CPU per hold fell by about 9 % (BENCHMARKS.md,
issue 18). Garbage without cycles is freed at once by reference counting either way; a collection scans what is
still alive of the last 20,000 objects, at most about a millisecond."""


def create_served_app() -> Starlette:
    """The application as ``flashsale serve`` runs it, one per process.

    Everything loaded by then (modules, routes, pools) lives as long as the process. Frozen, it is no longer
    scanned by every full garbage collection, which otherwise stalls all requests for tens of milliseconds:
    the p99 of POST /api/holds fell from about 70 ms to 12 ms, and throughput rose by a fifth (BENCHMARKS.md).
    The youngest generation is then collected less often (``YOUNG_GC_THRESHOLD``).
    """
    app = create_app()
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, older, oldest)
    return app
