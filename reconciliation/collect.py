"""Reconciliation's read: plain numbers per product from the engine and from PostgreSQL, changing nothing.

The API's dashboard reads through this module alone, so it never loads the drain or the repairs.

It also finds the writes Redis lost: PostgreSQL only learns what Redis wrote (the outbox), so Redis is never
behind it, except when Redis lost writes it had acknowledged and a worker had already drained: a failover to a
replica that never got them (``FLASHSALE_REDIS_ACK_REPLICAS=0``), or Redis restarting without persistence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import sqlalchemy as sa

from engine import Engine
from engine.exceptions import ProductNotFound
from engine.types import OrderStatus
from persistence.conflicts import StoredConflict, open_conflicts
from persistence.models import orders, products

LossKind = Literal["order", "payment", "cancellation"]

# Redis answers for closed orders for a day (engine/lua/_prelude.lua); a rebuild restores the same window.
CLOSED_ORDER_WINDOW = timedelta(days=1)
LOSS_WINDOW = CLOSED_ORDER_WINDOW - timedelta(hours=1)
"""Closed orders Redis must still know (it keeps them a day; an hour spared for clocks that disagree)."""


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
class LostWrite:
    """A change PostgreSQL has from the engine that the engine no longer has: it lost a write it had made."""

    order_id: str
    kind: LossKind
    """order: Redis does not know the order; payment: paid in PostgreSQL, not in Redis; cancellation: cancelled
    in PostgreSQL, not in Redis."""
    durable: OrderStatus
    engine: OrderStatus | None


def lost_writes(durable: Mapping[str, OrderStatus], engine: Mapping[str, OrderStatus | None]) -> list[LostWrite]:
    """The orders PostgreSQL (read first) holds in a state Redis (read after) never reached.

    An order moves only from pending to paid or cancelled, and PostgreSQL learns each move from Redis's outbox,
    so PostgreSQL is never ahead of Redis unless Redis lost the move. Redis ahead of PostgreSQL is the outbox
    not drained yet, not a loss.
    """
    lost = []
    for order_id, status in sorted(durable.items()):
        mine = engine.get(order_id)
        if mine is None:
            lost.append(LostWrite(order_id, "order", status, None))
        elif mine != status and status != "pending" and not (status == "cancelled" and mine == "paid"):
            # cancelled here, paid in Redis: a late success revived it, not yet drained (Redis is ahead)
            lost.append(LostWrite(order_id, "payment" if status == "paid" else "cancellation", status, mine))
    return lost


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
    lost: tuple[LostWrite, ...] = ()
    """What PostgreSQL has that Redis lost (``lost_writes``)."""


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


def durable_statuses(
    db: sa.Engine, product_ids: Sequence[int], now: datetime | None = None
) -> dict[int, dict[str, OrderStatus]]:
    """Per product, the status of each order Redis must still know: pending, or closed within ``LOSS_WINDOW``."""
    since = (now or datetime.now(UTC)) - LOSS_WINDOW
    statement = sa.select(orders.c.product_id, orders.c.id, orders.c.status).where(
        orders.c.product_id.in_(product_ids),
        sa.or_(orders.c.status == "pending", orders.c.paid_at >= since, orders.c.cancelled_at >= since),
    )
    found: dict[int, dict[str, OrderStatus]] = {product_id: {} for product_id in product_ids}
    with db.connect() as connection:
        for product_id, order_id, status in connection.execute(statement):
            found[product_id][order_id] = status
    return found


def catalog_ids(db: sa.Engine) -> list[int]:
    with db.connect() as connection:
        return list(connection.execute(sa.select(products.c.id).order_by(products.c.id)).scalars())


def collect(engine: Engine, db: sa.Engine, product_ids: Sequence[int] | None = None) -> list[ProductState]:
    """Both sides' numbers for every product either side knows (or the given ones).

    The engine is read before and after PostgreSQL; a product whose numbers moved in between is
    reported not ``settled`` (so ``behind``), never as a false drift. The orders' statuses are read from
    PostgreSQL first, then from Redis: whatever PostgreSQL had, Redis had before, so Redis lacking it is a loss.
    """
    ids = sorted(set(engine.product_ids()) | set(catalog_ids(db))) if product_ids is None else list(product_ids)
    before = {product_id: engine_side(engine, product_id) for product_id in ids}
    durable = durable_counts(db, ids)
    conflicts = open_conflicts(db, ids)
    statuses = durable_statuses(db, ids) if ids else {}
    states = []
    for product_id in ids:
        counters, backlog = engine_side(engine, product_id)
        settled = before[product_id] == (counters, backlog)
        mine = tuple(conflicts.get(product_id, ()))
        recorded = statuses.get(product_id, {})
        lost: tuple[LostWrite, ...] = ()
        if counters is not None and recorded:
            lost = tuple(lost_writes(recorded, engine.order_states(product_id, list(recorded))))
        states.append(ProductState(product_id, counters, durable.get(product_id), backlog, settled, mine, lost))
    return states
