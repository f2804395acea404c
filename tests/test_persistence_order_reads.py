"""Reading orders and payments back from PostgreSQL, for the API when Redis forgot them."""

from __future__ import annotations

import sqlalchemy as sa

from engine import Engine
from persistence.order_reads import (
    ProcessingRecord,
    get_order,
    get_payment,
    payments_for_order,
    processing_by_transaction,
    recorded_transaction_ids,
)
from tests.support.sales import add_product
from workers.drain import drain


def test_get_order_and_payment_read_what_the_drain_wrote(real_engine: Engine, db: sa.Engine) -> None:
    add_product(real_engine, db, 1)
    order = real_engine.convert(real_engine.reserve(1, 1, customer_id="c").hold_id)
    real_engine.settle(order.order_id, "t-failed", "failed", '{"n": 1}')
    drain(real_engine, db)

    record = get_order(db, order.order_id)
    assert record is not None
    assert (record.status, record.cancel_reason, record.transaction_id) == ("cancelled", "payment_failed", None)
    payment = get_payment(db, "t-failed")
    assert payment is not None
    assert (payment.order_id, payment.status, payment.applied, payment.payload) == (
        order.order_id,
        "failed",
        True,
        {"n": 1},
    )
    assert payments_for_order(db, order.order_id) == [payment]


def test_unknown_ids_read_as_none(db: sa.Engine) -> None:
    assert get_order(db, "o1_01JD0Z3N5W8YQ2T4V6X8Z0A1B2") is None
    assert get_payment(db, "nope") is None


def test_a_transaction_known_only_from_its_processing_is_bound_to_its_order(real_engine: Engine, db: sa.Engine) -> None:
    add_product(real_engine, db, 1, stock=5)
    held = real_engine.convert(real_engine.reserve(1, 1).hold_id)
    paid = real_engine.convert(real_engine.reserve(1, 1).hold_id)
    real_engine.processing(held.order_id, "txn-processing", 60_000)
    real_engine.settle(paid.order_id, "txn-paid", "success")
    drain(real_engine, db)

    found = processing_by_transaction(db, ["txn-processing", "txn-paid", "txn-unknown"])

    assert found == {"txn-processing": ProcessingRecord("txn-processing", held.order_id)}
    assert sorted(recorded_transaction_ids(db, 10) or []) == ["txn-paid", "txn-processing"]
    assert recorded_transaction_ids(db, 1) is None
