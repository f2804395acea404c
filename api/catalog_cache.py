"""The catalog (names and the rest of the product rows) cached in process for a few seconds.

Only what may be a little stale is cached: stock and availability always come live from the engine.
One reload at a time, whatever the number of waiting requests; when the database is down the last
good copy is served, and only a process that never loaded the catalog answers 503.
"""

from __future__ import annotations

import asyncio
import time

import sqlalchemy as sa

from api import threadpool
from api.errors import DatabaseUnavailable
from persistence.catalog import Product, list_products
from shared.logs import get_logger

DEFAULT_TTL_SECONDS = 5.0

log = get_logger("api.catalog")


class CatalogCache:
    def __init__(self, db: sa.Engine, ttl: float = DEFAULT_TTL_SECONDS) -> None:
        self.db = db
        self.ttl = ttl
        self._products: dict[int, Product] | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    async def products(self) -> dict[int, Product]:
        if self._products is not None and time.monotonic() - self._loaded_at < self.ttl:
            return self._products
        async with self._lock:
            if self._products is not None and time.monotonic() - self._loaded_at < self.ttl:
                return self._products  # another request reloaded it while this one waited
            try:
                rows = await threadpool.call(list_products, self.db)
            except DatabaseUnavailable:
                if self._products is None:
                    raise
                log.warning("catalog_stale", reason="database unavailable")
                self._loaded_at = time.monotonic()  # try the database again after another ttl, not every request
                return self._products
            self._products = {p.id: p for p in rows}
            self._loaded_at = time.monotonic()
            return self._products

    async def get(self, product_id: int) -> Product | None:
        return (await self.products()).get(product_id)

    def invalidate(self) -> None:
        self._loaded_at = 0.0
