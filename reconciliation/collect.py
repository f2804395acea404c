"""Reconciliation's read: plain numbers per product from the engine and from PostgreSQL, changing nothing.

The API's dashboard reads through this module alone, so it never loads the drain or the repairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from engine import Engine
from engine.exceptions import ProductNotFound
from persistence.conflicts import StoredConflict, open_conflicts
from persistence.models import orders, products


@dataclass(frozen=True)
class EngineCounters:
    total: int
    available: int
    held: int
    pending: int
    sold: int


@dataclass(frozen=True)
class DurableCounts:
    stock: int
    pending: int
    """Units in pending orders."""
    paid: int
    """Units in paid orders."""


@dataclass(frozen=True)
class ProductState:
    product_id: int
    engine: EngineCounters | None
    """None when Redis does not know the product (lost, or never loaded)."""
    durable: DurableCounts | None
    """None when the catalog has no such product."""
    backlog: int
    """Outbox events not yet in PostgreSQL."""
    settled: bool = True
    """The engine's numbers did not move while PostgreSQL was read."""
    conflicts: tuple[StoredConflict, ...] = ()
    """Payments of this product whose transaction id PostgreSQL holds for another order, not yet resolved."""


def engine_side(engine: Engine, product_id: int) -> tuple[EngineCounters | None, int]:
    """The engine's counters of a product (None if it does not know it) and its outbox backlog."""
    try:
        snap = engine.snapshot(product_id)
    except ProductNotFound:
        return None, engine.outbox_backlog(product_id)
    return EngineCounters(snap.total, snap.available, snap.held, snap.pending, snap.sold), snap.outbox_backlog


def durable_counts(db: sa.Engine, product_ids: Sequence[int] | None = None) -> dict[int, DurableCounts]:
    """Catalog stock and pending / paid units per product, in one statement (one consistent read)."""
    units = {
        status: sa.func.coalesce(sa.func.sum(sa.case((orders.c.status == status, orders.c.quantity))), 0)
        for status in ("pending", "paid")
    }
    statement = (
        sa.select(products.c.id, products.c.stock, units["pending"], units["paid"])
        .select_from(products.outerjoin(orders, orders.c.product_id == products.c.id))
        .group_by(products.c.id, products.c.stock)
    )
    if product_ids is not None:
        statement = statement.where(products.c.id.in_(product_ids))
    with db.connect() as connection:
        return {row[0]: DurableCounts(row[1], int(row[2]), int(row[3])) for row in connection.execute(statement)}


def catalog_ids(db: sa.Engine) -> list[int]:
    with db.connect() as connection:
        return list(connection.execute(sa.select(products.c.id).order_by(products.c.id)).scalars())


def collect(engine: Engine, db: sa.Engine, product_ids: Sequence[int] | None = None) -> list[ProductState]:
    """Both sides' numbers for every product either side knows (or the given ones).

    The engine is read before and after PostgreSQL; a product whose numbers moved in between is
    reported not ``settled`` (so ``behind``), never as a false drift.
    """
    ids = sorted(set(engine.product_ids()) | set(catalog_ids(db))) if product_ids is None else list(product_ids)
    before = {product_id: engine_side(engine, product_id) for product_id in ids}
    durable = durable_counts(db, ids)
    conflicts = open_conflicts(db, ids)
    states = []
    for product_id in ids:
        counters, backlog = engine_side(engine, product_id)
        settled = before[product_id] == (counters, backlog)
        mine = tuple(conflicts.get(product_id, ()))
        states.append(ProductState(product_id, counters, durable.get(product_id), backlog, settled, mine))
    return states
