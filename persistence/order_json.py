"""An order as a JSON object: the one renderer of the API's order answers and of a merchant event's order."""

from __future__ import annotations

from typing import Any

from engine.types import Order
from persistence.times import iso


def order_object(order: Order) -> dict[str, Any]:
    """``Order`` in the shape ``api.bodies.Order`` declares (docs/merchant-events.md shows the same)."""
    return {
        "order_id": order.order_id,
        "hold_id": order.hold_id,
        "product_id": order.product_id,
        "customer_id": order.customer_id,
        "quantity": order.quantity,
        "amount_cents": order.amount_cents,
        "status": order.status,
        "created_at": iso(order.created_at_ms),
        "expires_at": iso(order.expires_at_ms),
        "closed_at": iso(order.closed_at_ms) if order.closed_at_ms else None,
        "transaction_id": order.transaction_id,
        "cancel_reason": order.cancel_reason,
        "revived": order.revived,
    }
