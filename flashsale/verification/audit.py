"""After a run: did everything the API acknowledged reach PostgreSQL, once, and was anything oversold?

``invariant_faults`` reads Redis; ``audit`` reads PostgreSQL and compares it with a ``Ledger`` of 2xx answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from engine import Engine
from engine.exceptions import ProductNotFound
from flashsale.verification.workload import Ledger
from persistence.models import orders, payments, products

CHUNK = 1000


def invariant_faults(engine: Engine, product_ids: Iterable[int]) -> list[str]:
    """Products whose counters break ``total == available + held + pending + sold, none below zero``."""
    faults = []
    for product_id in product_ids:
        try:
            snap = engine.snapshot(product_id)
        except ProductNotFound:
            faults.append(f"product {product_id} is not in Redis")
            continue
        if not snap.consistent:
            faults.append(
                f"product {product_id}: total {snap.total}, available {snap.available}, held {snap.held}, "
                f"pending {snap.pending}, sold {snap.sold}"
            )
    return faults


def oversold_units(engine: Engine, product_ids: Iterable[int]) -> int:
    """Units Redis has promised beyond the stock (a negative ``available``), over every product."""
    units = 0
    for product_id in product_ids:
        try:
            snap = engine.snapshot(product_id)
        except ProductNotFound:
            continue
        units += max(0, -snap.available) + max(0, snap.held + snap.pending + snap.sold - snap.total)
    return units


@dataclass
class Audit:
    orders_checked: int = 0
    payments_checked: int = 0
    lost: list[str] = field(default_factory=list)
    """Acknowledged orders or payments missing from PostgreSQL, or there in a state the API did not promise."""
    applied_twice: list[str] = field(default_factory=list)
    """Orders with more than one applied payment."""
    oversold: dict[int, int] = field(default_factory=dict)
    """Product -> units in paid and pending orders beyond the stock."""

    @property
    def oversold_units(self) -> int:
        return sum(self.oversold.values())

    @property
    def ok(self) -> bool:
        return not (self.lost or self.applied_twice or self.oversold)

    def summary(self) -> dict[str, Any]:
        return {
            "orders_checked": self.orders_checked,
            "payments_checked": self.payments_checked,
            "lost": len(self.lost),
            "lost_examples": self.lost[:5],
            "applied_twice": len(self.applied_twice),
            "oversold_units": self.oversold_units,
        }


def _chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def audit(db: sa.Engine, ledger: Ledger, product_ids: Iterable[int] | None = None) -> Audit:
    """Every acknowledged order and payment against PostgreSQL, and the stock of every product (or those given)."""
    result = Audit(len(ledger.orders), len(ledger.payments))
    with db.connect() as connection:
        stored_orders: dict[str, Any] = {}
        for chunk in _chunks(list(ledger.orders)):
            query = sa.select(orders.c.id, orders.c.status, orders.c.transaction_id, orders.c.quantity).where(
                orders.c.id.in_(chunk)
            )
            stored_orders.update({row.id: row for row in connection.execute(query)})
        stored_payments: dict[str, Any] = {}
        for chunk in _chunks(list(ledger.payments)):
            query = sa.select(payments.c.transaction_id, payments.c.order_id, payments.c.status, payments.c.applied)
            stored_payments.update(
                {
                    row.transaction_id: row
                    for row in connection.execute(query.where(payments.c.transaction_id.in_(chunk)))
                }
            )
        twice = connection.execute(
            sa.select(payments.c.order_id)
            .where(payments.c.applied)
            .group_by(payments.c.order_id)
            .having(sa.func.count() > 1)
        )
        result.applied_twice = list(twice.scalars())
        committed = sa.func.coalesce(
            sa.func.sum(sa.case((orders.c.status.in_(("paid", "pending")), orders.c.quantity), else_=0)), 0
        )
        stock = (
            sa.select(products.c.id, products.c.stock, committed)
            .select_from(products.outerjoin(orders, orders.c.product_id == products.c.id))
            .group_by(products.c.id, products.c.stock)
        )
        if product_ids is not None:
            stock = stock.where(products.c.id.in_(list(product_ids)))
        for product_id, total, units in connection.execute(stock):
            if int(units) > total:
                result.oversold[product_id] = int(units) - total

    for order_id, acked in ledger.orders.items():
        row = stored_orders.get(order_id)
        if row is None:
            result.lost.append(f"order {order_id} ({acked.status}) is not in PostgreSQL")
        elif row.quantity != acked.quantity:
            result.lost.append(f"order {order_id}: quantity {row.quantity}, acknowledged {acked.quantity}")
        elif acked.status == "paid" and (row.status, row.transaction_id) != ("paid", acked.transaction_id):
            result.lost.append(f"order {order_id} acknowledged paid by {acked.transaction_id}, stored {row.status}")
        elif acked.status == "cancelled" and row.status != "cancelled":
            result.lost.append(f"order {order_id} acknowledged cancelled, stored {row.status}")
    for txn, acked_payment in ledger.payments.items():
        row = stored_payments.get(txn)
        if row is None:
            result.lost.append(f"payment {txn} is not in PostgreSQL")
        elif (row.order_id, row.status, bool(row.applied)) != (
            acked_payment.order_id,
            acked_payment.result,
            acked_payment.applied,
        ):
            result.lost.append(
                f"payment {txn}: stored {(row.order_id, row.status, row.applied)}, acknowledged "
                f"{(acked_payment.order_id, acked_payment.result, acked_payment.applied)}"
            )
    return result
