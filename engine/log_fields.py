"""What a log line says of an order and of a refund: one owner for the API, the settlement and the drain."""

from __future__ import annotations

from typing import Any

from engine.types import Order


def order_log_fields(order: Order) -> dict[str, Any]:
    """An order in a log line: its ids, its buyer, its units and its amount."""
    return {
        "order_id": order.order_id,
        "product_id": order.product_id,
        "customer_id": order.customer_id,
        "quantity": order.quantity,
        "amount_cents": order.amount_cents,
    }


def refund_log_fields(order: Order, transaction_id: str) -> dict[str, Any]:
    """A refund in a log line: the charge ``transaction_id`` to give back, and the order it did not pay as that
    order stands (``paid_by``: the transaction that did pay it, if one did)."""
    return {
        **order_log_fields(order),
        "transaction_id": transaction_id,
        "order_status": order.status,
        "cancel_reason": order.cancel_reason,
        "paid_by": order.transaction_id,
    }
