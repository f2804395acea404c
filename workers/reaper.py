"""Expire overdue holds and unpaid orders of every product, in the engine's bounded batches."""

from __future__ import annotations

from dataclasses import dataclass

from engine import Engine
from engine.calls import REAP_BATCH

MAX_ROUNDS = 50
"""Reap calls per product per run; a product still overdue after that is finished by the next run."""


@dataclass(frozen=True)
class ReapTotals:
    products: int
    holds_expired: int
    orders_expired: int
    units_returned: int
    overdue_left: int


def reap(engine: Engine, batch: int = REAP_BATCH) -> ReapTotals:
    holds = orders = units = left = 0
    product_ids = engine.product_ids()
    for product_id in product_ids:
        for _ in range(MAX_ROUNDS):
            result = engine.reap(product_id, batch)
            holds += result.holds_expired
            orders += result.orders_expired
            units += result.units_returned
            if result.overdue_left == 0:
                break
        left += result.overdue_left
    return ReapTotals(len(product_ids), holds, orders, units, left)
