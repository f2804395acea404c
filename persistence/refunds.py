"""Refunds owed, as work: a request per charge no order took, ``requested`` → ``sent`` → ``confirmed``.

A payment is flagged ``refund_required`` when a success reached an order that was already cancelled (it
expired unpaid and could not be revived, a failed payment, the buyer cancelled it) or already paid by another
transaction. The drain records the request in the transaction that writes the payment (``request_rows``); an
operator marks it ``sent`` once asked of the provider (``flashsale refunds sent``); the provider's
``refunded`` webhook, naming the original transaction, confirms it (``confirm``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

import sqlalchemy as sa

from persistence.models import refund_requests
from persistence.payloads import payload_json
from persistence.upsert import insert

RefundReason = Literal["already_paid", "expired", "payment_failed", "cancelled"]
RefundStatus = Literal["requested", "sent", "confirmed"]

REASONS: dict[RefundReason, str] = {
    "already_paid": "the order was already paid by another transaction",
    "expired": "the order had expired unpaid",
    "payment_failed": "the order was cancelled after a failed payment",
    "cancelled": "the order had been cancelled",
}
OPEN: tuple[RefundStatus, ...] = ("requested", "sent")


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
    """When the payment arrived (the request is recorded with it)."""
    reason: RefundReason
    paid_by: str | None
    """For ``already_paid``: the transaction that did pay the order."""
    status: RefundStatus = "requested"
    sent_at: datetime | None = None
    confirmed_at: datetime | None = None

    @property
    def why(self) -> str:
        text = REASONS[self.reason]
        return f"{text} ({self.paid_by})" if self.paid_by else text


def reason_for(order_status: str, cancel_reason: str | None) -> RefundReason:
    if order_status == "paid":
        return "already_paid"
    return cast(RefundReason, cancel_reason or "cancelled")


def request_row(payment: dict[str, Any], order: dict[str, Any]) -> dict[str, Any]:
    """The ``refund_requests`` row for a payment row flagged ``refund_required`` and its order's row."""
    paid = order["status"] == "paid"
    return {
        "transaction_id": payment["transaction_id"],
        "order_id": order["id"],
        "product_id": order["product_id"],
        "customer_id": order["customer_id"],
        "amount_cents": order["amount_cents"],
        "reason": reason_for(order["status"], order["cancel_reason"]),
        "paid_by": order["transaction_id"] if paid else None,
        "status": "requested",
        "requested_at": payment["received_at"],
    }


def record_requests(connection: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Record refund requests in the caller's transaction; one per charge, whatever replays."""
    if rows:
        connection.execute(insert(connection, refund_requests).on_conflict_do_nothing(), list(rows))


def _refund(m: sa.RowMapping) -> Refund:
    return Refund(
        transaction_id=m["transaction_id"],
        order_id=m["order_id"],
        product_id=m["product_id"],
        customer_id=m["customer_id"],
        amount_cents=m["amount_cents"],
        received_at=m["requested_at"],
        reason=cast(RefundReason, m["reason"]),
        paid_by=m["paid_by"],
        status=cast(RefundStatus, m["status"]),
        sent_at=m["sent_at"],
        confirmed_at=m["confirmed_at"],
    )


def refunds(db: sa.Engine, statuses: Sequence[RefundStatus] = OPEN) -> list[Refund]:
    """The refund requests in ``statuses`` (those still open by default), oldest first."""
    statement = (
        sa.select(refund_requests)
        .where(refund_requests.c.status.in_(list(statuses)))
        .order_by(refund_requests.c.requested_at, refund_requests.c.transaction_id)
    )
    with db.connect() as connection:
        return [_refund(row) for row in connection.execute(statement).mappings()]


def get_refund(db: sa.Engine, transaction_id: str) -> Refund | None:
    with db.connect() as connection:
        statement = sa.select(refund_requests).where(refund_requests.c.transaction_id == transaction_id)
        row = connection.execute(statement).mappings().first()
    return None if row is None else _refund(row)


def open_count(db: sa.Engine) -> int:
    with db.connect() as connection:
        statement = sa.select(sa.func.count()).where(refund_requests.c.status.in_(list(OPEN)))
        return int(connection.execute(statement).scalar_one())


def mark_sent(db: sa.Engine, transaction_id: str, *, now: datetime | None = None) -> Refund | None:
    """``requested`` → ``sent``; a refund already sent or confirmed is left as it is. None: no such request."""
    with db.begin() as connection:
        connection.execute(
            refund_requests.update()
            .where(refund_requests.c.transaction_id == transaction_id, refund_requests.c.status == "requested")
            .values(status="sent", sent_at=now or datetime.now(UTC))
        )
    return get_refund(db, transaction_id)


@dataclass(frozen=True)
class Confirmation:
    refund: Refund
    changed: bool
    """False: it was confirmed already (a repeated ``refunded`` webhook)."""


def confirm(db: sa.Engine, transaction_id: str, payload: str, *, now: datetime | None = None) -> Confirmation | None:
    """The provider says the charge ``transaction_id`` was given back: confirm its request, once.

    None: flashsale requested no refund of that charge.
    """
    with db.begin() as connection:
        changed = connection.execute(
            refund_requests.update()
            .where(refund_requests.c.transaction_id == transaction_id, refund_requests.c.status.in_(list(OPEN)))
            .values(status="confirmed", confirmed_at=now or datetime.now(UTC), confirmation=payload_json(payload))
        ).rowcount
    refund = get_refund(db, transaction_id)
    return None if refund is None else Confirmation(refund, bool(changed))
