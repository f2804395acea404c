"""Orders and payments read back from PostgreSQL, for readers that find them no longer hot in Redis. An order
reads as the engine's ``Order``; a payment as a ``PaymentRecord``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa

from engine.types import CancelReason, Order, OrderStatus, PaymentResult
from persistence.models import orders, payments
from persistence.times import opt_to_ms, to_ms


@dataclass(frozen=True)
class PaymentRecord:
    transaction_id: str
    order_id: str
    status: PaymentResult
    applied: bool
    received_at: datetime
    payload: Any
    refund_required: bool = False


def order_from_row(m: Mapping[Any, Any]) -> Order:
    """An ``orders`` row (read, or as the drain writes it) as the engine's ``Order``: what the API and the merchant
    events render, what a restore and a late payment take."""
    return Order(
        order_id=m["id"],
        hold_id=m["hold_id"],
        product_id=m["product_id"],
        customer_id=m["customer_id"],
        quantity=m["quantity"],
        amount_cents=m["amount_cents"],
        status=cast(OrderStatus, m["status"]),
        created_at_ms=to_ms(m["created_at"]),
        expires_at_ms=to_ms(m["expires_at"]),
        closed_at_ms=opt_to_ms(m["paid_at"] or m["cancelled_at"]),
        transaction_id=m["transaction_id"],
        cancel_reason=cast(CancelReason | None, m["cancel_reason"]),
        revived=bool(m["revived"]),
        processing_transaction_id=m["processing_transaction_id"] if m["status"] == "pending" else None,
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


@dataclass(frozen=True)
class ProcessingRecord:
    """A transaction id PostgreSQL knows only from its ``processing`` webhook: the order whose payment grace it used."""

    transaction_id: str
    order_id: str


def get_order(db: sa.Engine, order_id: str) -> Order | None:
    with db.connect() as connection:
        row = connection.execute(sa.select(orders).where(orders.c.id == order_id)).mappings().first()
    return None if row is None else order_from_row(row)


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


def processing_by_transaction(db: sa.Engine, transaction_ids: Sequence[str]) -> dict[str, ProcessingRecord]:
    """The orders whose payment grace a ``processing`` of one of ``transaction_ids`` used, in one read."""
    column = orders.c.processing_transaction_id
    with db.connect() as connection:
        statement = sa.select(column, orders.c.id).where(column.in_(set(transaction_ids)))
        return {txn: ProcessingRecord(txn, order_id) for txn, order_id in connection.execute(statement)}


def recorded_transaction_ids(db: sa.Engine, limit: int) -> list[str] | None:
    """Every transaction id PostgreSQL binds to an order (a payment, or a ``processing`` that used an order's grace),
    or None when there are more than ``limit``."""
    processing = orders.c.processing_transaction_id
    with db.connect() as connection:
        bound = sa.union(sa.select(payments.c.transaction_id), sa.select(processing).where(processing.is_not(None)))
        statement = sa.select(bound.subquery().c[0]).limit(limit + 1)
        found = list(connection.execute(statement).scalars())
    return None if len(found) > limit else found


def payments_for_order(db: sa.Engine, order_id: str) -> list[PaymentRecord]:
    with db.connect() as connection:
        statement = sa.select(payments).where(payments.c.order_id == order_id).order_by(payments.c.received_at)
        return [payment_record(row) for row in connection.execute(statement).mappings()]
