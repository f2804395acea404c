"""What a log line says of an order and of a refund (engine/log_fields.py)."""

from __future__ import annotations

from engine.log_fields import order_log_fields, refund_log_fields
from engine.types import Order

PAID = Order("o3_A", "h3_A", 3, "carol", 2, 1800, "paid", 1_000, 2_000, 1_500, "pay_FIRST", None)


def test_an_order_logs_its_ids_buyer_units_and_amount() -> None:
    assert order_log_fields(PAID) == {
        "order_id": "o3_A",
        "product_id": 3,
        "customer_id": "carol",
        "quantity": 2,
        "amount_cents": 1800,
    }


def test_a_refund_logs_the_charge_to_give_back_and_the_order_as_it_stands() -> None:
    assert refund_log_fields(PAID, "pay_SECOND") == {
        **order_log_fields(PAID),
        "transaction_id": "pay_SECOND",
        "order_status": "paid",
        "cancel_reason": None,
        "paid_by": "pay_FIRST",
    }
