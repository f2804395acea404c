"""The audit the fault tests rely on: it passes a sale that reached PostgreSQL whole, and catches every way one
could not (a lost order or payment, a state other than the one acknowledged, a second applied payment, oversell)."""

from __future__ import annotations

import sqlalchemy as sa

from engine import Engine
from engine.keys import product_keys
from flashsale.verification.audit import audit, invariant_faults, oversold_units
from flashsale.verification.workload import AckedOrder, AckedPayment, Ledger
from tests.support.sales import add_product, place_orders
from workers.drain import drain


def a_drained_sale(engine: Engine, db: sa.Engine) -> Ledger:
    """Twelve orders (paid, pending, failed, cancelled in turn) drained into PostgreSQL, and their ledger."""
    add_product(engine, db, 1, stock=100)
    sale = place_orders(engine, 1, 12, prefix="t")
    drain(engine, db)
    ledger = Ledger()
    for i, (order_id, status) in enumerate(sale.orders.items()):
        order = engine.order(order_id)
        ledger.orders[order_id] = AckedOrder(order_id, 1, order.quantity, status, order.transaction_id)
        if status == "paid" or order.cancel_reason == "payment_failed":
            txn = f"t-1-{i}" if status == "paid" else f"t-1-{i}-failed"
            result = "success" if status == "paid" else "failed"
            ledger.payments[txn] = AckedPayment(txn, order_id, result, True)
    assert set(ledger.payments) == sale.payments
    return ledger


def test_a_sale_that_reached_postgresql_whole_passes(real_engine: Engine, db: sa.Engine) -> None:
    ledger = a_drained_sale(real_engine, db)

    result = audit(db, ledger, [1])

    assert result.ok, result.summary()
    assert (result.orders_checked, result.payments_checked) == (12, 6)
    assert invariant_faults(real_engine, [1]) == []
    assert oversold_units(real_engine, [1]) == 0


def test_a_lost_order_a_lost_payment_and_a_state_never_acknowledged_are_caught(
    real_engine: Engine, db: sa.Engine
) -> None:
    ledger = a_drained_sale(real_engine, db)
    paid = next(o for o in ledger.orders.values() if o.status == "paid")
    cancelled = next(o for o in ledger.orders.values() if o.status == "cancelled")
    payment = next(iter(ledger.payments.values()))
    with db.begin() as connection:
        connection.execute(sa.text("DELETE FROM payments WHERE transaction_id = :t"), {"t": payment.transaction_id})
        connection.execute(sa.text("UPDATE orders SET status = 'pending' WHERE id = :o"), {"o": cancelled.order_id})
    ledger.orders["o1_01JD0Z3N5W8YQ2T4V6X8Z0A1B2"] = AckedOrder("o1_01JD0Z3N5W8YQ2T4V6X8Z0A1B2", 1, 1, "pending")
    paid.transaction_id = "another-transaction"

    result = audit(db, ledger, [1])

    assert not result.ok
    assert len(result.lost) == 4, result.lost
    assert any("o1_01JD0Z3N5W8YQ2T4V6X8Z0A1B2" in line for line in result.lost)
    assert any(payment.transaction_id in line for line in result.lost)


def test_a_second_applied_payment_and_oversell_in_postgresql_are_caught(real_engine: Engine, db: sa.Engine) -> None:
    ledger = a_drained_sale(real_engine, db)
    paid = next(o for o in ledger.orders.values() if o.status == "paid")
    with db.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO payments (transaction_id, order_id, status, applied, received_at) "
                "VALUES ('second', :o, 'success', true, CURRENT_TIMESTAMP)"
            ),
            {"o": paid.order_id},
        )
        connection.execute(sa.text("UPDATE products SET stock = 1 WHERE id = 1"))

    result = audit(db, ledger, [1])

    assert result.applied_twice == [paid.order_id]
    assert result.oversold_units > 0


def test_counters_that_do_not_add_up_are_an_invariant_fault(real_engine: Engine) -> None:
    real_engine.set_stock(1, 10)
    real_engine.redis.hincrby(product_keys(1).product, "available", -11)

    assert invariant_faults(real_engine, [1]) != []
    assert oversold_units(real_engine, [1]) == 1
    assert invariant_faults(real_engine, [2]) == ["product 2 is not in Redis"]
