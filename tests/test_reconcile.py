"""The reconciliation's pure comparison, on plain snapshots."""

from __future__ import annotations

import pytest

from reconciliation.collect import DurableCounts, EngineCounters, LostWrite, ProductState, lost_writes
from reconciliation.compare import Difference, compare, compare_one

ENGINE = EngineCounters(total=10, available=4, held=1, pending=2, sold=3)
DURABLE = DurableCounts(stock=10, pending=2, paid=3)


def state(
    engine: EngineCounters | None = ENGINE,
    durable: DurableCounts | None = DURABLE,
    backlog: int = 0,
    settled: bool = True,
) -> ProductState:
    return ProductState(1, engine, durable, backlog, settled)


def test_matching_numbers_with_an_empty_outbox_are_consistent() -> None:
    finding = compare_one(state())

    assert (finding.status, finding.remedy, finding.differences) == ("consistent", None, ())


def test_holds_are_not_compared_since_postgresql_never_sees_them() -> None:
    engine = EngineCounters(total=10, available=0, held=5, pending=2, sold=3)

    assert compare_one(state(engine)).status == "consistent"


def test_an_outbox_backlog_makes_the_product_behind_not_drifted() -> None:
    finding = compare_one(state(durable=DurableCounts(stock=10, pending=0, paid=0), backlog=5))

    assert (finding.status, finding.remedy) == ("behind", "drain")


def test_numbers_that_moved_while_read_count_as_behind() -> None:
    finding = compare_one(state(durable=DurableCounts(stock=10, pending=3, paid=3), settled=False))

    assert finding.status == "behind"


def test_different_units_with_an_empty_outbox_are_drift_with_the_numbers() -> None:
    finding = compare_one(state(durable=DurableCounts(stock=10, pending=1, paid=5)))

    assert (finding.status, finding.remedy) == ("drifted", "rebuild")
    assert finding.differences == (Difference("pending", 2, 1), Difference("sold", 3, 5))


def test_a_product_redis_lost_is_drift_to_rebuild() -> None:
    finding = compare_one(state(engine=None))

    assert (finding.status, finding.remedy) == ("drifted", "rebuild")
    assert finding.differences == (Difference("missing_in_engine", None, 10),)


def test_a_product_missing_from_the_catalog_is_drift_to_put_again() -> None:
    finding = compare_one(state(durable=None, backlog=3))

    assert (finding.status, finding.remedy) == ("drifted", "put_product")
    assert finding.differences == (Difference("missing_in_catalog", 10, None),)


def test_only_the_total_differing_means_the_catalog_write_failed() -> None:
    finding = compare_one(state(durable=DurableCounts(stock=12, pending=2, paid=3)))

    assert (finding.status, finding.remedy) == ("drifted", "put_product")
    assert finding.differences == (Difference("stock", 10, 12),)


@pytest.mark.parametrize(
    ("counters", "difference"),
    [
        (EngineCounters(total=10, available=5, held=1, pending=2, sold=3), Difference("counters", 11, 10)),
        (EngineCounters(total=10, available=-1, held=6, pending=2, sold=3), Difference("negative", -1, None)),
    ],
)
def test_broken_engine_invariants_are_drift_even_while_behind(counters: EngineCounters, difference: Difference) -> None:
    finding = compare_one(state(counters, backlog=4))

    assert finding.status == "drifted"
    assert difference in finding.differences


def test_compare_keeps_one_finding_per_product_in_order() -> None:
    states = [ProductState(p, None, DurableCounts(1, 0, 0), 0) for p in (3, 1, 2)]

    assert [f.product_id for f in compare(states)] == [3, 1, 2]


def test_what_postgresql_has_and_redis_does_not_is_a_lost_write_of_each_kind() -> None:
    durable = {"o1_a": "pending", "o1_b": "paid", "o1_c": "paid", "o1_d": "cancelled", "o1_e": "cancelled"}
    engine = {"o1_a": None, "o1_b": "pending", "o1_c": "cancelled", "o1_d": "pending", "o1_e": "paid"}
    # o1_e: cancelled in PostgreSQL, paid in Redis: a late success revived it, not drained yet (Redis ahead)

    assert lost_writes(durable, engine) == [
        LostWrite("o1_a", "order", "pending", None),
        LostWrite("o1_b", "payment", "paid", "pending"),
        LostWrite("o1_c", "payment", "paid", "cancelled"),
        LostWrite("o1_d", "cancellation", "cancelled", "pending"),
    ]


def test_redis_ahead_of_postgresql_is_the_outbox_not_yet_drained_never_a_loss() -> None:
    durable = {"o1_a": "pending", "o1_b": "pending", "o1_c": "paid"}
    engine = {"o1_a": "paid", "o1_b": "cancelled", "o1_c": "paid", "o1_z": "pending"}

    assert lost_writes(durable, engine) == []


def test_lost_writes_are_drift_to_rebuild_even_while_the_outbox_is_behind() -> None:
    lost = (LostWrite("o1_a", "order", "pending", None),)

    finding = compare_one(ProductState(1, ENGINE, DURABLE, backlog=3, settled=True, lost=lost))

    assert (finding.status, finding.remedy) == ("drifted", "rebuild")
    assert finding.differences == (Difference("lost_writes", None, 1),)
