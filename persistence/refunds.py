"""Refunds owed: payments a customer made that no order took, with what an operator needs to act on them.

A payment is flagged ``refund_required`` when a success reached an order that was already cancelled (it
expired unpaid, a failed payment or the buyer cancelled it) or already paid by another transaction. The
list is read from ``payments`` joined with ``orders``; a refund workflow can hang its own state off the
transaction id, which identifies each refund.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

import sqlalchemy as sa

from persistence.models import orders, payments

RefundReason = Literal["already_paid", "expired", "payment_failed", "cancelled"]

REASONS: dict[RefundReason, str] = {
    "already_paid": "the order was already paid by another transaction",
    "expired": "the order had expired unpaid",
    "payment_failed": "the order was cancelled after a failed payment",
    "cancelled": "the order had been cancelled",
}


@dataclass(frozen=True)
class Refund:
    transaction_id: str
    """The charge to refund: the provider's transaction id."""
    order_id: str
    product_id: int
    customer_id: str | None
    amount_cents: int
    """What the order cost, so what the charge was for."""
    received_at: datetime
    """When the payment arrived."""
    reason: RefundReason
    paid_by: str | None
    """For ``already_paid``: the transaction that did pay the order."""

    @property
    def why(self) -> str:
        text = REASONS[self.reason]
        return f"{text} ({self.paid_by})" if self.paid_by else text


def _reason(status: str, cancel_reason: str | None) -> RefundReason:
    if status == "paid":
        return "already_paid"
    return cast(RefundReason, cancel_reason or "cancelled")


def refunds_required(db: sa.Engine) -> list[Refund]:
    """Every payment flagged for refund, oldest first."""
    statement = (
        sa.select(
            payments.c.transaction_id,
            payments.c.order_id,
            payments.c.received_at,
            orders.c.product_id,
            orders.c.customer_id,
            orders.c.amount_cents,
            orders.c.status,
            orders.c.cancel_reason,
            orders.c.transaction_id.label("paid_by"),
        )
        .join(orders, orders.c.id == payments.c.order_id)
        .where(payments.c.refund_required.is_(True))
        .order_by(payments.c.received_at, payments.c.transaction_id)
    )
    with db.connect() as connection:
        return [
            Refund(
                transaction_id=row["transaction_id"],
                order_id=row["order_id"],
                product_id=row["product_id"],
                customer_id=row["customer_id"],
                amount_cents=row["amount_cents"],
                received_at=row["received_at"],
                reason=_reason(row["status"], row["cancel_reason"]),
                paid_by=row["paid_by"] if row["status"] == "paid" else None,
            )
            for row in connection.execute(statement).mappings()
        ]
