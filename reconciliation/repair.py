"""Reconciliation's repairs: drain the outbox to its end, and rebuild a product's Redis state from PostgreSQL.

(The third repair, reaping overdue holds and orders, is the workers' reaper as it is.)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from engine import Engine
from engine.exceptions import OutboxMoved, OutboxNotEmpty
from engine.types import Order, RestoredPayment, StockChange
from persistence.catalog import Product, product_from_row, room_settings
from persistence.models import orders, payments, products
from persistence.order_reads import order_from_row
from persistence.times import opt_to_ms
from reconciliation.collect import CLOSED_ORDER_WINDOW, catalog_ids, engine_side
from reconciliation.exceptions import NotInCatalog, RebuildUnsettled
from workers.drain import DrainFailed, DrainResult, drain

# Redis answers for closed orders for a day (CLOSED_ORDER_WINDOW) and remembers transactions for a week
# (engine/lua/_prelude.lua); a rebuild restores the same windows.
TRANSACTION_WINDOW = timedelta(days=7)
RESTORE_ATTEMPTS = 5
"""Drain, mark, read, restore: how many times ``rebuild`` tries before it gives up on a product that keeps changing."""


def drain_to_end(engine: Engine, db: sa.Engine, product_ids: Sequence[int] | None = None) -> DrainResult:
    """The drain, without its per-job budget; raises DrainFailed if a product's events cannot be applied."""
    result = drain(engine, db, product_ids, max_batches=2**62)
    if result.failures:
        raise DrainFailed(result.failures)
    return result


def _restore_arguments(
    connection: sa.Connection, product_id: int, now: datetime
) -> tuple[Product, int, list[Order], list[RestoredPayment], dict[str, int]]:
    row = connection.execute(sa.select(products).where(products.c.id == product_id)).mappings().first()
    if row is None:
        raise NotInCatalog(product_id)
    product = product_from_row(row)
    mine = orders.c.product_id == product_id
    sold = connection.execute(
        sa.select(sa.func.coalesce(sa.func.sum(orders.c.quantity), 0)).where(mine, orders.c.status == "paid")
    ).scalar_one()
    since = now - CLOSED_ORDER_WINDOW
    recent = sa.or_(
        orders.c.status == "pending",
        orders.c.paid_at >= since,
        orders.c.cancelled_at >= since,
    )
    restored = []
    for row in connection.execute(sa.select(orders).where(mine, recent).order_by(orders.c.created_at)).mappings():
        restored.append(order_from_row(row))
    kept = {order.order_id for order in restored}
    transactions = connection.execute(
        sa.select(payments.c.transaction_id, payments.c.order_id, payments.c.status, payments.c.applied)
        .join(orders, orders.c.id == payments.c.order_id)
        .where(mine, payments.c.received_at >= now - TRANSACTION_WINDOW)
        .order_by(payments.c.received_at)
    )
    restored_payments = [
        RestoredPayment(txn, order_id, status, bool(applied))
        for txn, order_id, status, applied in transactions
        if order_id in kept
    ]
    customers = {
        customer: int(units)
        for customer, units in connection.execute(
            sa.select(orders.c.customer_id, sa.func.sum(orders.c.quantity))
            .where(mine, orders.c.customer_id.is_not(None), orders.c.status.in_(("pending", "paid")))
            .group_by(orders.c.customer_id)
        )
    }
    return product, int(sold), restored, restored_payments, customers


def rebuild(engine: Engine, db: sa.Engine, product_id: int) -> StockChange:
    """Rebuild one product's Redis state from PostgreSQL: ``available = stock - pending - paid``.

    Orders, transactions and customer quotas come back, and the catalog's settings (the waiting room, the
    low-stock threshold); holds are lost, and so are the tickets of a waiting room Redis lost: it opens again,
    empty, with a new seed (docs/waiting-room.md). The outbox is drained first,
    so nothing acknowledged is dropped. Running it twice has the effect of running it once.
    For a product Redis lost: on a live product it would also drop the active holds.

    The snapshot is never stale: the outbox's mark (its last generated id) is read with the outbox empty,
    before PostgreSQL, and the restore script refuses if any event was appended since, even one a worker
    has drained in between. Then it drains and reads again, at most ``RESTORE_ATTEMPTS`` times
    (``RebuildUnsettled``).
    """
    for _ in range(RESTORE_ATTEMPTS):
        drain_to_end(engine, db, [product_id])
        mark = engine.outbox_mark(product_id)
        if mark.backlog:
            continue  # an event landed since the drain: drain it too
        with db.connect() as connection:
            if connection.dialect.name == "postgresql":
                connection = connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                product, sold, restored, restored_payments, customers = _restore_arguments(
                    connection, product_id, datetime.now(UTC)
                )
        try:
            return engine.restore(
                product_id,
                mark=mark,
                total=product.stock,
                price_cents=product.price_cents,
                max_per_customer=product.max_per_customer,
                starts_at_ms=opt_to_ms(product.sale_starts_at),
                ends_at_ms=opt_to_ms(product.sale_ends_at),
                sold=sold,
                orders=restored,
                payments=restored_payments,
                customers=customers,
                waiting_room=room_settings(product),
                low_stock_threshold=product.low_stock_threshold,
            )
        except (OutboxNotEmpty, OutboxMoved):
            continue  # the product changed after the mark: the snapshot may miss it
    raise RebuildUnsettled(product_id, RESTORE_ATTEMPTS)


def rebuild_all(engine: Engine, db: sa.Engine, *, only_missing: bool = True) -> dict[int, StockChange]:
    """Rebuild every catalog product Redis does not know (or, with ``only_missing=False``, every one)."""
    rebuilt = {}
    known = set(engine.product_ids())
    for product_id in catalog_ids(db):
        if only_missing and product_id in known and engine_side(engine, product_id)[0] is not None:
            continue
        rebuilt[product_id] = rebuild(engine, db, product_id)
    return rebuilt
