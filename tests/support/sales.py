"""Engine traffic for the persistence and worker tests: orders placed, paid, failed and cancelled."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa

from engine import Engine
from persistence.catalog import ProductSpec, put_product
from reconciliation import repair


@dataclass
class Sale:
    """What the engine acknowledged, to compare with what reached PostgreSQL."""

    orders: dict[str, str] = field(default_factory=dict)
    """order id -> final status"""
    payments: set[str] = field(default_factory=set)

    def merge(self, other: Sale) -> None:
        self.orders.update(other.orders)
        self.payments |= other.payments


def add_product(engine: Engine, db: sa.Engine, product_id: int, stock: int = 1000, **extra: int) -> None:
    put_product(engine, db, ProductSpec(product_id, f"Product {product_id}", 250, stock, **extra))


def place_orders(engine: Engine, product_id: int, count: int, *, prefix: str = "t") -> Sale:
    """``count`` orders cycling through paid, pending, payment failed and cancelled."""
    sale = Sale()
    for i in range(count):
        hold = engine.reserve(product_id, 1 + i % 2, customer_id=f"c{i % 7}")
        order = engine.convert(hold.hold_id)
        kind = i % 4
        status = "pending"
        if kind == 0:
            txn = f"{prefix}-{product_id}-{i}"
            engine.settle(order.order_id, txn, "success", f'{{"transaction_id": "{txn}"}}')
            sale.payments.add(txn)
            status = "paid"
        elif kind == 2:
            txn = f"{prefix}-{product_id}-{i}-failed"
            engine.settle(order.order_id, txn, "failed", "")
            sale.payments.add(txn)
            status = "cancelled"
        elif kind == 3:
            engine.cancel(order.order_id)
            status = "cancelled"
        sale.orders[order.order_id] = status
    return sale


def sell_between_the_read_and_the_restore(
    monkeypatch: pytest.MonkeyPatch, engine: Engine, db: sa.Engine, *, times: int
) -> list[str]:
    """Up to ``times`` rebuild attempts of product 1: after the attempt read PostgreSQL and before it restores,
    a buyer's hold is converted, paid and drained (by a worker, say). Returns the orders sold so."""
    sold: list[str] = []
    read = repair._restore_arguments

    def read_then_sell(*args: Any, **kwargs: Any) -> Any:
        snapshot = read(*args, **kwargs)
        if len(sold) < times:
            order = engine.convert(engine.reserve(1, 1, customer_id=f"late{len(sold)}").hold_id)
            engine.settle(order.order_id, f"late-txn-{len(sold)}", "success")
            repair.drain_to_end(engine, db, [1])  # a worker: the outbox is empty again when the restore runs
            sold.append(order.order_id)
        return snapshot

    monkeypatch.setattr(repair, "_restore_arguments", read_then_sell)
    return sold
