"""``flashsale refunds``: every charge no order took, with what an operator needs to give it back."""

from __future__ import annotations

import json

from reconciliation.repair import drain_to_end
from tests.support.cli import Operator
from tests.support.sales import add_product


def test_refunds_says_so_when_there_is_none(operator: Operator) -> None:
    result = operator.run("refunds")

    assert result.exit_code == 0, result.output
    assert "no refunds required" in result.stdout
    assert json.loads(operator.run("refunds", "--json").stdout) == {"refunds": [], "count": 0, "total_cents": 0}


def test_refunds_lists_second_charges_and_payments_for_cancelled_orders(operator: Operator) -> None:
    add_product(operator.engine, operator.db, 1, stock=10)  # 2.50 a unit
    twice = operator.engine.convert(operator.engine.reserve(1, 2, customer_id="carol").hold_id)
    cancelled = operator.engine.convert(operator.engine.reserve(1, 1, customer_id="dave").hold_id)
    fine = operator.engine.convert(operator.engine.reserve(1, 1, customer_id="erin").hold_id)
    operator.engine.settle(twice.order_id, "pay_FIRST", "success")
    operator.engine.settle(twice.order_id, "pay_SECOND", "success")
    operator.engine.cancel(cancelled.order_id)
    operator.engine.settle(cancelled.order_id, "pay_LATE", "success")
    operator.engine.settle(fine.order_id, "pay_FINE", "success")
    operator.engine.settle(fine.order_id, "pay_FAILED_LATER", "failed")  # charged nothing: no refund
    drain_to_end(operator.engine, operator.db)

    result = operator.run("refunds")
    listed = json.loads(operator.run("refunds", "--json").stdout)

    assert result.exit_code == 0, result.output
    assert "2 refund(s) required, 7.50 in all" in result.stdout
    assert "already paid by another transaction (pay_FIRST)" in result.stdout
    assert "had been cancelled" in result.stdout
    assert (listed["count"], listed["total_cents"]) == (2, 750)
    by_txn = {r["transaction_id"]: r for r in listed["refunds"]}
    assert set(by_txn) == {"pay_SECOND", "pay_LATE"}
    second = by_txn["pay_SECOND"]
    assert (second["order_id"], second["product_id"], second["customer_id"], second["amount_cents"]) == (
        twice.order_id,
        1,
        "carol",
        500,
    )
    assert (second["reason"], second["paid_by"]) == ("already_paid", "pay_FIRST")
    assert second["received_at"]
    assert (by_txn["pay_LATE"]["reason"], by_txn["pay_LATE"]["customer_id"]) == ("cancelled", "dave")
