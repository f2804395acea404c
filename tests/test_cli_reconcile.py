from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from engine import Engine
from engine.keys import product_keys
from reconciliation.repair import RESTORE_ATTEMPTS, drain_to_end
from tests.support.cli import Operator
from tests.support.database import order_statuses
from tests.support.sales import add_product, place_orders, sell_between_the_read_and_the_restore


def verdicts(result_stdout: str) -> dict[int, str]:
    return {row["product_id"]: row["verdict"] for row in json.loads(result_stdout)["products"]}


@pytest.fixture
def sold(operator: Operator) -> Operator:
    """Two products with orders in every state, all of it in PostgreSQL."""
    add_product(operator.engine, operator.db, 1, stock=100)
    add_product(operator.engine, operator.db, 2, stock=50)
    place_orders(operator.engine, 1, 8)
    place_orders(operator.engine, 2, 4, prefix="u")
    drain_to_end(operator.engine, operator.db)
    return operator


def test_reconcile_reports_consistent_products_and_exits_0(sold: Operator) -> None:
    result = sold.run("reconcile")

    assert result.exit_code == 0, result.output
    assert "dry run: nothing changed" in result.stdout
    assert "2 product(s): no drift" in result.stdout


def test_reconcile_dry_run_shows_an_undrained_outbox_as_behind_and_changes_nothing(sold: Operator) -> None:
    hold = sold.engine.reserve(1, 1)
    order = sold.engine.convert(hold.hold_id)

    result = sold.run("reconcile", "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["dry_run"] is True
    assert report["actions"] == []
    assert verdicts(result.stdout) == {1: "behind", 2: "ok"}
    assert order.order_id not in order_statuses(sold.db)
    assert sold.engine.outbox_backlog(1) > 0


def test_reconcile_fix_drains_the_outbox_into_the_database(sold: Operator) -> None:
    hold = sold.engine.reserve(1, 1)
    order = sold.engine.convert(hold.hold_id)

    result = sold.run("reconcile", "--fix")

    assert result.exit_code == 0, result.output
    assert "→ reaped 0 overdue hold(s)" in result.stdout
    assert "→ drained 1 outbox event(s): 1 order row(s)" in result.stdout
    assert order_statuses(sold.db)[order.order_id] == "pending"
    assert sold.engine.outbox_backlog(1) == 0


def test_reconcile_finds_planted_drift_exits_1_and_rebuild_fixes_it(sold: Operator) -> None:
    # Given counters that no longer add up: 5 units appeared from nowhere.
    before = sold.engine.snapshot(1)
    sold.redis.hincrby(product_keys(1).product, "available", 5)

    dry = sold.run("reconcile", "--json")
    assert dry.exit_code == 1
    row = next(r for r in json.loads(dry.stdout)["products"] if r["product_id"] == 1)
    assert row["verdict"] == "DRIFT"
    assert row["remedy"] == "rebuild"
    assert sold.engine.snapshot(1).available == before.available + 5  # a dry run changes nothing

    fixed = sold.run("reconcile", "--rebuild", "1")

    assert fixed.exit_code == 0, fixed.output
    assert "→ rebuilt product 1 from the database" in fixed.stdout
    after = sold.engine.snapshot(1)
    assert (after.total, after.available, after.pending, after.sold) == (
        before.total,
        before.available,
        before.pending,
        before.sold,
    )


def test_reconcile_rebuild_all_restores_every_product_after_flushdb(sold: Operator) -> None:
    before = {pid: sold.engine.snapshot(pid) for pid in (1, 2)}
    sold.redis.flushdb()
    assert sold.run("reconcile").exit_code == 1

    result = sold.run("reconcile", "--rebuild-all", "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [a["product_id"] for a in report["actions"]] == [1, 2]
    assert verdicts(result.stdout) == {1: "ok", 2: "ok"}
    for pid, snap in before.items():
        again = sold.engine.snapshot(pid)
        assert (again.total, again.available, again.held, again.pending, again.sold) == (
            snap.total,
            snap.available + snap.held,  # holds live in Redis only; they are lost with it
            0,
            snap.pending,
            snap.sold,
        )


def test_reconcile_rebuild_all_leaves_sound_products_alone(sold: Operator) -> None:
    hold = sold.engine.reserve(2, 1)  # an active hold a rebuild would drop

    result = sold.run("reconcile", "--rebuild-all")

    assert result.exit_code == 0, result.output
    assert "nothing to rebuild" in result.stdout
    assert sold.engine.hold(hold.hold_id).status == "active"


def test_reconcile_exits_2_when_a_service_is_down(sold: Operator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASHSALE_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/flashsale")

    result = sold.run("reconcile")

    assert result.exit_code == 2
    assert "the database at postgresql+psycopg://postgres@127.0.0.1:1/flashsale is unavailable" in result.stderr


def test_reconcile_refuses_rebuild_and_rebuild_all_together(operator: Operator) -> None:
    result = operator.run("reconcile", "--rebuild", "1", "--rebuild-all")

    assert result.exit_code == 2
    assert "exclusive" in result.stderr


def test_a_rebuild_that_cannot_settle_says_why_and_exits_2(sold: Operator, monkeypatch: pytest.MonkeyPatch) -> None:
    sales = sell_between_the_read_and_the_restore(monkeypatch, sold.engine, sold.db, times=100)

    result = sold.run("reconcile", "--rebuild", "1", "--json")

    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "rebuild_unsettled"
    assert "product 1 kept changing" in error["detail"]
    assert len(sales) == RESTORE_ATTEMPTS
    assert "Traceback" not in result.output


def test_a_payment_conflict_reaching_the_drain_is_stored_logged_and_reported_as_drift(sold: Operator) -> None:
    first = sold.engine.convert(sold.engine.reserve(1, 1, customer_id="alice").hold_id)
    second = sold.engine.convert(sold.engine.reserve(2, 1, customer_id="bob").hold_id)
    sold.engine.settle(first.order_id, "pay_DUP", "success")
    drain_to_end(sold.engine, sold.db)
    # Both checks were blind (Redis had forgotten the id, PostgreSQL did not answer): the settle went through.
    sold.engine.settle(second.order_id, "pay_DUP", "success")

    with capture_logs() as logs:
        drained = drain_to_end(sold.engine, sold.db)
    result = sold.run("reconcile")
    report = json.loads(sold.run("reconcile", "--json").stdout)

    assert drained.conflicts == 1
    (logged,) = [entry for entry in logs if entry["event"] == "payment_conflict"]
    assert (logged["transaction_id"], logged["order_id"], logged["recorded_order_id"]) == (
        "pay_DUP",
        second.order_id,
        first.order_id,
    )
    assert logged["log_level"] == "error"
    assert result.exit_code == 1, result.output
    assert f"transaction pay_DUP was already recorded for order {first.order_id}" in result.stdout
    assert f"reached order {second.order_id} and paid it" in result.stdout
    assert "--resolve-conflict" in result.stdout
    assert verdicts(json.dumps(report)) == {1: "ok", 2: "DRIFT"}
    (product_2,) = [p for p in report["products"] if p["product_id"] == 2]
    assert product_2["remedy"] == "review_payments"
    assert [c["order_id"] for c in product_2["payment_conflicts"]] == [second.order_id]
    assert report["exit_code"] == 1


def test_resolving_a_payment_conflict_ends_the_drift(sold: Operator) -> None:
    first = sold.engine.convert(sold.engine.reserve(1, 1).hold_id)
    second = sold.engine.convert(sold.engine.reserve(2, 1).hold_id)
    sold.engine.settle(first.order_id, "pay_DUP", "success")
    drain_to_end(sold.engine, sold.db)
    sold.engine.settle(second.order_id, "pay_DUP", "success")
    drain_to_end(sold.engine, sold.db)

    resolved = sold.run("reconcile", "--resolve-conflict", "pay_DUP")
    unknown = sold.run("reconcile", "--resolve-conflict", "pay_NONE")

    assert resolved.exit_code == 0, resolved.output
    assert "marked 1 payment conflict(s) of transaction pay_DUP resolved" in resolved.stdout
    assert "2 product(s): no drift" in resolved.stdout
    assert "transaction pay_NONE has no open payment conflict" in unknown.stdout


def lose_what_follows(engine: Engine, product_id: int) -> Callable[[], None]:
    """Snapshot the product's Redis keys now; calling the result puts them back, as a failover to a replica that
    stopped replicating at this moment would: Redis loses every later write, PostgreSQL keeps what it drained."""
    redis = engine.redis
    keys = [key for key in redis.keys(f"fs:{{{product_id}}}:*")]
    saved = {key: (redis.dump(key), redis.pttl(key)) for key in keys}

    def lose() -> None:
        redis.delete(*redis.keys(f"fs:{{{product_id}}}:*"))
        for key, (value, ttl) in saved.items():
            redis.restore(key, max(ttl, 0), value, replace=True)

    return lose


def test_reconcile_finds_each_write_redis_lost_and_fix_rebuilds_without_overselling(sold: Operator) -> None:
    # Given PostgreSQL holds writes the engine lost: a new order, a payment and a cancellation
    engine, db = sold.engine, sold.db
    pending = [order for order, status in order_statuses(db).items() if status == "pending" and order.startswith("o1")]
    lose = lose_what_follows(engine, 1)
    new = engine.convert(engine.reserve(1, 2, customer_id="late").hold_id)
    engine.settle(pending[0], "t-lost", "success")
    engine.cancel(pending[1])
    drain_to_end(engine, db)
    lose()
    assert engine.snapshot(1).outbox_backlog == 0

    result = sold.run("reconcile", "--json")

    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["lost_writes"] == {"total": 3, "order": 1, "payment": 1, "cancellation": 1}
    product = next(p for p in report["products"] if p["product_id"] == 1)
    assert (product["verdict"], product["remedy"]) == ("DRIFT", "rebuild")
    assert {(w["order_id"], w["kind"]) for w in product["lost_writes"]} == {
        (new.order_id, "order"),
        (pending[0], "payment"),
        (pending[1], "cancellation"),
    }
    assert verdicts(result.stdout)[2] == "ok"

    # When --fix runs, the product is rebuilt from PostgreSQL: the units of the lost order and payment are not
    # on sale again
    fixed = sold.run("reconcile", "--fix", "--json")

    assert fixed.exit_code == 0, fixed.output
    report = json.loads(fixed.stdout)
    assert report["lost_writes"]["total"] == 3
    assert [a["product_id"] for a in report["actions"] if a.get("reason") == "lost_writes"] == [1]
    snap = engine.snapshot(1)
    statuses = order_statuses(db)
    assert statuses[new.order_id] == "pending"
    assert statuses[pending[0]] == "paid"
    assert engine.order(new.order_id).status == "pending"
    assert engine.order(pending[0]).status == "paid"
    assert engine.order(pending[1]).status == "cancelled"
    assert snap.consistent
    assert snap.available == 100 - snap.pending - snap.sold
    assert verdicts(sold.run("reconcile", "--json").stdout) == {1: "ok", 2: "ok"}
