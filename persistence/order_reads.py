"""Orders and payments as PostgreSQL keeps them, for readers that find them no longer hot in Redis."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa

from engine.types import CancelReason, OrderStatus, PaymentResult
from persistence.models import orders, payments


@dataclass(frozen=True)
class OrderRecord:
    id: str
    product_id: int
    hold_id: str
    customer_id: str | None
    quantity: int
    amount_cents: int
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    paid_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: CancelReason | None
    transaction_id: str | None
    """The transaction that paid the order."""
    revived: bool = False
    """Paid by a success after it had expired unpaid (its units taken again)."""


@dataclass(frozen=True)
class PaymentRecord:
    transaction_id: str
    order_id: str
    status: PaymentResult
    applied: bool
    received_at: datetime
    payload: Any
    refund_required: bool = False


def order_record(m: sa.RowMapping) -> OrderRecord:
    return OrderRecord(
        id=m["id"],
        product_id=m["product_id"],
        hold_id=m["hold_id"],
        customer_id=m["customer_id"],
        quantity=m["quantity"],
        amount_cents=m["amount_cents"],
        status=cast(OrderStatus, m["status"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        expires_at=m["expires_at"],
        paid_at=m["paid_at"],
        cancelled_at=m["cancelled_at"],
        cancel_reason=cast(CancelReason | None, m["cancel_reason"]),
        transaction_id=m["transaction_id"],
        revived=bool(m["revived"]),
    )


def payment_record(m: sa.RowMapping) -> PaymentRecord:
    return PaymentRecord(
        transaction_id=m["transaction_id"],
        order_id=m["order_id"],
        status=cast(PaymentResult, m["status"]),
        applied=bool(m["applied"]),
        received_at=m["received_at"],
        payload=m["payload"],
        refund_required=bool(m["refund_required"]),
    )


def get_order(db: sa.Engine, order_id: str) -> OrderRecord | None:
    with db.connect() as connection:
        row = connection.execute(sa.select(orders).where(orders.c.id == order_id)).mappings().first()
    return None if row is None else order_record(row)


def get_payment(db: sa.Engine, transaction_id: str) -> PaymentRecord | None:
    with db.connect() as connection:
        statement = sa.select(payments).where(payments.c.transaction_id == transaction_id)
        row = connection.execute(statement).mappings().first()
    return None if row is None else payment_record(row)


def payments_by_transaction(db: sa.Engine, transaction_ids: Sequence[str]) -> dict[str, PaymentRecord]:
    """The recorded payments among ``transaction_ids``, in one read (the webhook's check, batched)."""
    with db.connect() as connection:
        statement = sa.select(payments).where(payments.c.transaction_id.in_(set(transaction_ids)))
        return {row["transaction_id"]: payment_record(row) for row in connection.execute(statement).mappings()}


def recorded_transaction_ids(db: sa.Engine, limit: int) -> list[str] | None:
    """Every transaction id ``payments`` records, or None when there are more than ``limit``."""
    with db.connect() as connection:
        statement = sa.select(payments.c.transaction_id).limit(limit + 1)
        found = list(connection.execute(statement).scalars())
    return None if len(found) > limit else found


def payments_for_order(db: sa.Engine, order_id: str) -> list[PaymentRecord]:
    with db.connect() as connection:
        statement = sa.select(payments).where(payments.c.order_id == order_id).order_by(payments.c.received_at)
        return [payment_record(row) for row in connection.execute(statement).mappings()]
