"""The check after every scenario: no product oversold, from the engine's own counters."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from engine import Engine


@dataclass
class StockCheck:
    products: int = 0
    oversold_units: int = 0
    """Units committed (held + pending + sold) beyond a product's total, plus any counter below zero."""
    holds_granted: int = 0
    """Holds the engine counted (``n_holds``) across the products."""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {
            "products": self.products,
            "oversold_units": self.oversold_units,
            "holds_granted": self.holds_granted,
            "ok": self.ok,
            "problems": self.problems[:10],
        }


def check_stock(engine: Engine, product_ids: Iterable[int], *, client_holds: int | None = None) -> StockCheck:
    """total == available + held + pending + sold and none below zero, for every product.

    With ``client_holds`` (201s the load generator saw), the engine must have granted at least as many:
    it may have granted more, answering requests the generator stopped waiting for at the end.
    """
    result = StockCheck()
    for product_id in product_ids:
        snapshot = engine.snapshot(product_id)
        result.products += 1
        counters = {
            "available": snapshot.available,
            "held": snapshot.held,
            "pending": snapshot.pending,
            "sold": snapshot.sold,
        }
        committed = snapshot.held + snapshot.pending + snapshot.sold
        over = max(0, committed - snapshot.total) + sum(-v for v in counters.values() if v < 0)
        result.oversold_units += over
        if not snapshot.consistent:
            result.problems.append(f"product {product_id}: total {snapshot.total} != {counters}")
        result.holds_granted += engine.stats(product_id).get("holds", 0)
    if client_holds is not None and client_holds > result.holds_granted:
        result.problems.append(
            f"the client saw {client_holds} holds granted, the engine counted {result.holds_granted}"
        )
    return result
