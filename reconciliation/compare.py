"""Reconciliation's verdict: a pure function from both sides' numbers to a finding per product, and its remedy."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from reconciliation.collect import EngineCounters, ProductState

Status = Literal["consistent", "behind", "drifted"]
Remedy = Literal["drain", "rebuild", "put_product", "review_payments"]


@dataclass(frozen=True)
class Difference:
    field: str
    """stock (engine total vs catalog stock), pending, sold (vs paid units), counters (total is not the sum),
    negative, missing_in_engine, missing_in_catalog, payment_conflicts (the number of open conflicts, as
    ``durable``), lost_writes (the number of writes PostgreSQL has that Redis lost, as ``durable``)."""
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
    if state.lost:
        faults.append(Difference("lost_writes", None, len(state.lost)))
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
