"""A product put from the operator's side (``flashsale product set``, ``seed``, ``up``): logged as the admin
route logs it, and answered with the engine's live numbers."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from api.times import iso_datetime
from engine import Engine
from engine.exceptions import EngineError
from persistence.catalog import Product, ProductSpec, put_product
from persistence.exceptions import PersistenceError
from shared.logs import PRODUCT_PUT_FAILED, get_logger

log = get_logger("flashsale.products")


def _saved(engine: Engine, product: Product, created: bool) -> dict[str, Any]:
    snapshot = engine.snapshot(product.id)
    return {
        "id": product.id,
        "name": product.name,
        "price_cents": product.price_cents,
        "stock": snapshot.total,
        "available": snapshot.available,
        "max_per_customer": product.max_per_customer or None,
        "sale_starts_at": iso_datetime(product.sale_starts_at),
        "sale_ends_at": iso_datetime(product.sale_ends_at),
        "created": created,
    }


def save(engine: Engine, db: sa.Engine, spec: ProductSpec) -> dict[str, Any]:
    """put_product, logged; its errors (ValueError, StockBelowCommitted, PersistenceError, ...) pass through."""
    try:
        product, created = put_product(engine, db, spec)
    except (EngineError, PersistenceError) as error:
        log.warning(PRODUCT_PUT_FAILED, product_id=spec.id, code=error.code, error=str(error), source="cli")
        raise
    log.info("product_saved", product_id=product.id, created=created, stock=product.stock, source="cli")
    return _saved(engine, product, created)
