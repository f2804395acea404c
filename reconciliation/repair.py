"""Reconciliation: does Redis (the engine) agree with PostgreSQL (the durable record)?

``collect`` reads plain numbers per product from both sides; ``compare`` is a pure function from those
numbers to findings; the repairs are ``drain``, ``reap`` and ``rebuild`` (Redis state from PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import sqlalchemy as sa

from engine import Engine
from engine.exceptions import EngineError, OutboxMoved, OutboxNotEmpty, ProductNotFound
from engine.types import RestoredOrder, RestoredPayment, StockChange
from persistence.conflicts import StoredConflict, open_conflicts
from persistence.models import orders, payments, products
from persistence.order_reads import order_record
from persistence.times import opt_to_ms, to_ms
from workers.drain import DrainFailed, DrainResult
from workers.drain import drain as drain_outbox
from workers.reaper import ReapTotals
from workers.reaper import reap as reap_products

Status = Literal["consistent", "behind", "drifted"]
Remedy = Literal["drain", "rebuild", "put_product", "review_payments"]

# Redis answers for closed orders for a day and remembers transactions for a week (engine/lua/_prelude.lua);
# a rebuild restores the same windows.
CLOSED_ORDER_WINDOW = timedelta(days=1)
TRANSACTION_WINDOW = timedelta(days=7)
RESTORE_ATTEMPTS = 5
"""Drain, mark, read, restore: how many times ``rebuild`` tries before it gives up on a product that keeps changing."""


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


@dataclass(frozen=True)
class Difference:
    field: str
    """stock (engine total vs catalog stock), pending, sold (vs paid units), counters (total is not the sum),
    negative, missing_in_engine, missing_in_catalog, payment_conflicts (the number of open conflicts, as
    ``durable``)."""
    engine: int | None
    durable: int | None


@dataclass(frozen=True)
class Finding:
    product_id: int
    status: Status
    remedy: Remedy | None
    differences: tuple[Difference, ...]
    state: ProductState


def _engine_faults(counters: EngineCounters) -> list[Difference]:
    faults = []
    parts = counters.available + counters.held + counters.pending + counters.sold
    if parts != counters.total:
        faults.append(Difference("counters", parts, counters.total))
    for name in ("available", "held", "pending", "sold"):
        value = getattr(counters, name)
        if value < 0:
            faults.append(Difference("negative", value, None))
    return faults


def compare_one(state: ProductState) -> Finding:
    """The product's units first; then any open payment conflict makes it drifted, whatever its numbers say."""
    found = _compare_units(state)
    if not state.conflicts:
        return found
    conflict = Difference("payment_conflicts", None, len(state.conflicts))
    remedy = found.remedy if found.status == "drifted" else "review_payments"
    return Finding(state.product_id, "drifted", remedy, (*found.differences, conflict), state)


def _compare_units(state: ProductState) -> Finding:
    def finding(status: Status, remedy: Remedy | None, differences: Iterable[Difference] = ()) -> Finding:
        return Finding(state.product_id, status, remedy, tuple(differences), state)

    engine, durable = state.engine, state.durable
    if durable is None:
        total = engine.total if engine else None
        return finding("drifted", "put_product", [Difference("missing_in_catalog", total, None)])
    if engine is None:
        return finding("drifted", "rebuild", [Difference("missing_in_engine", None, durable.stock)])
    faults = _engine_faults(engine)
    if faults:
        return finding("drifted", "rebuild", faults)
    if state.backlog > 0 or not state.settled:
        return finding("behind", "drain")
    differences = [
        Difference(name, mine, theirs)
        for name, mine, theirs in (
            ("stock", engine.total, durable.stock),
            ("pending", engine.pending, durable.pending),
            ("sold", engine.sold, durable.paid),
        )
        if mine != theirs
    ]
    if not differences:
        return finding("consistent", None)
    # Only the total differs: a put_product that answered product_put_incomplete; putting it again converges.
    only_stock = all(d.field == "stock" for d in differences)
    return finding("drifted", "put_product" if only_stock else "rebuild", differences)


def compare(states: Sequence[ProductState]) -> list[Finding]:
    return [compare_one(state) for state in states]


def _engine_side(engine: Engine, product_id: int) -> tuple[EngineCounters | None, int]:
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
    before = {product_id: _engine_side(engine, product_id) for product_id in ids}
    durable = durable_counts(db, ids)
    conflicts = open_conflicts(db, ids)
    states = []
    for product_id in ids:
        counters, backlog = _engine_side(engine, product_id)
        settled = before[product_id] == (counters, backlog)
        mine = tuple(conflicts.get(product_id, ()))
        states.append(ProductState(product_id, counters, durable.get(product_id), backlog, settled, mine))
    return states


def drain(engine: Engine, db: sa.Engine, product_ids: Sequence[int] | None = None) -> DrainResult:
    """Drain the outbox to the end; raises DrainFailed if a product's events cannot be applied."""
    result = drain_outbox(engine, db, product_ids, max_batches=2**62)
    if result.failures:
        raise DrainFailed(result.failures)
    return result


def reap(engine: Engine) -> ReapTotals:
    return reap_products(engine)


class NotInCatalog(EngineError):
    code = "product_not_in_catalog"

    def __init__(self, product_id: int) -> None:
        super().__init__(f"product {product_id} is not in the catalog: nothing to rebuild it from")
        self.product_id = product_id


class RebuildUnsettled(EngineError):
    code = "rebuild_unsettled"

    def __init__(self, product_id: int, attempts: int) -> None:
        super().__init__(
            f"product {product_id} kept changing: events were written during each of {attempts} rebuild attempts, "
            "so no snapshot of the database could be restored; stop its sale (or wait for it to settle) and "
            "rebuild again"
        )
        self.product_id = product_id
        self.attempts = attempts


def _restore_arguments(
    connection: sa.Connection, product_id: int, now: datetime
) -> tuple[sa.RowMapping, int, list[RestoredOrder], list[RestoredPayment], dict[str, int]]:
    product = connection.execute(sa.select(products).where(products.c.id == product_id)).mappings().first()
    if product is None:
        raise NotInCatalog(product_id)
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
        record = order_record(row)
        closed = record.paid_at or record.cancelled_at
        restored.append(
            RestoredOrder(
                order_id=record.id,
                hold_id=record.hold_id,
                customer_id=record.customer_id,
                quantity=record.quantity,
                amount_cents=record.amount_cents,
                status=record.status,
                created_at_ms=to_ms(record.created_at),
                expires_at_ms=to_ms(record.expires_at),
                closed_at_ms=opt_to_ms(closed),
                note=record.transaction_id or record.cancel_reason or "",
            )
        )
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

    Orders, transactions and customer quotas come back; holds are lost. The outbox is drained first,
    so nothing acknowledged is dropped. Running it twice has the effect of running it once.
    For a product Redis lost: on a live product it would also drop the active holds.

    The snapshot is never stale: the outbox's mark (its last generated id) is read with the outbox empty,
    before PostgreSQL, and the restore script refuses if any event was appended since, even one a worker
    has drained in between. Then it drains and reads again, at most ``RESTORE_ATTEMPTS`` times
    (``RebuildUnsettled``).
    """
    for _ in range(RESTORE_ATTEMPTS):
        drain(engine, db, [product_id])
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
                total=product["stock"],
                price_cents=product["price_cents"],
                max_per_customer=product["max_per_customer"],
                starts_at_ms=opt_to_ms(product["sale_starts_at"]),
                ends_at_ms=opt_to_ms(product["sale_ends_at"]),
                sold=sold,
                orders=restored,
                payments=restored_payments,
                customers=customers,
            )
        except (OutboxNotEmpty, OutboxMoved):
            continue  # the product changed after the mark: the snapshot may miss it
    raise RebuildUnsettled(product_id, RESTORE_ATTEMPTS)


def rebuild_all(engine: Engine, db: sa.Engine, *, only_missing: bool = True) -> dict[int, StockChange]:
    """Rebuild every catalog product Redis does not know (or, with ``only_missing=False``, every one)."""
    rebuilt = {}
    known = set(engine.product_ids())
    for product_id in catalog_ids(db):
        if only_missing and product_id in known and _engine_side(engine, product_id)[0] is not None:
            continue
        rebuilt[product_id] = rebuild(engine, db, product_id)
    return rebuilt
