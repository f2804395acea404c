"""Merchant events: the one owner of their format, and of the outbox rows the drain writes for them.

Every event is ``{"id", "type", "created_at", "data"}``: ``id`` is unique (``evt_<ULID>``; a merchant dedups on
it), ``created_at`` is when it happened (Redis server time, RFC 3339), ``data`` the object as it then stood.
They are made from what the drain commits to PostgreSQL, in the same transaction (``write``), one per transition
(``dedup_key``), so a replayed batch makes none twice and an event never announces what might still be lost.
``workers/deliveries.py`` sends them, signed like the inbound webhook (``shared/signing.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import orjson
import sqlalchemy as sa

from engine import outbox
from engine.ids import new_ulid
from persistence.models import merchant_events
from persistence.order_json import order_object
from persistence.order_reads import order_from_row
from persistence.times import iso, to_ms
from persistence.upsert import insert

EventType = Literal[
    "order.created",
    "order.paid",
    "order.cancelled",
    "order.revived",
    "refund.requested",
    "product.sold_out",
    "product.back_in_stock",
    "product.low_stock",
]
EVENT_TYPES: tuple[EventType, ...] = (
    "order.created",
    "order.paid",
    "order.cancelled",
    "order.revived",
    "refund.requested",
    "product.sold_out",
    "product.back_in_stock",
    "product.low_stock",
)
CATALOGUE: dict[EventType, str] = {
    "order.created": "a hold became a pending order",
    "order.paid": "a pending order was paid",
    "order.cancelled": "a pending order was cancelled; `data.cancel_reason` says why (cancelled, payment_failed, "
    "expired)",
    "order.revived": "a success arrived after the order had expired unpaid and its units were still available: "
    "the order is paid after all (`data.revived` is true)",
    "refund.requested": "a charge no order took (the order was cancelled for good, or paid by another transaction): "
    "give it back; the provider's `refunded` webhook confirms it",
    "product.sold_out": "the product's available units reached 0",
    "product.back_in_stock": "units of a sold-out product are available again (a hold or an order lapsed, a "
    "cancellation, a restock)",
    "product.low_stock": "the product's available units fell below its `low_stock_threshold`",
}
_ORDER_EVENTS: dict[str, EventType] = {
    outbox.ORDER_CREATED: "order.created",
    outbox.ORDER_PAID: "order.paid",
    outbox.ORDER_CANCELLED: "order.cancelled",
    outbox.ORDER_REVIVED: "order.revived",
}


def refund_object(refund: dict[str, Any]) -> dict[str, Any]:
    """A refund request, from its ``refund_requests`` row (``persistence.refunds.request_row``)."""
    return {
        "transaction_id": refund["transaction_id"],
        "order_id": refund["order_id"],
        "product_id": refund["product_id"],
        "customer_id": refund["customer_id"],
        "amount_cents": refund["amount_cents"],
        "reason": refund["reason"],
        "paid_by": refund["paid_by"],
        "status": refund["status"],
        "requested_at": _iso(refund["requested_at"]),
    }


def _iso(moment: datetime) -> str:
    return iso(to_ms(moment))


@dataclass(frozen=True)
class MerchantEvent:
    """One event to write: what it is, about what, and when it happened."""

    type: EventType
    stream: str
    """``order:<id>`` or ``product:<id>``: events of one stream are delivered in the order written."""
    dedup_key: str
    happened_at: datetime
    data: dict[str, Any]


def for_order(kind: str, order: dict[str, Any]) -> MerchantEvent | None:
    """The merchant event of an outbox order event (``order_created``, ``order_paid``, ``order_cancelled``)."""
    event_type = _ORDER_EVENTS.get(kind)
    if event_type is None:
        return None
    order_id = order["id"]
    data = order_object(order_from_row(order))  # as the API answers it
    return MerchantEvent(event_type, f"order:{order_id}", f"{event_type}:{order_id}", order["updated_at"], data)


def for_refund(refund: dict[str, Any]) -> MerchantEvent:
    txn = refund["transaction_id"]
    order_id = refund["order_id"]
    return MerchantEvent(
        "refund.requested",
        f"order:{order_id}",
        f"refund.requested:{txn}",
        refund["requested_at"],
        refund_object(refund),
    )


STOCK_EVENTS: dict[str, EventType] = {
    "sold_out": "product.sold_out",
    "back_in_stock": "product.back_in_stock",
    "low_stock": "product.low_stock",
}


def for_stock(
    product_id: int, stream_id: str, kind: str, available: int, threshold: int, at: datetime
) -> MerchantEvent:
    """The merchant event of a ``product_stock`` outbox event: one per transition (its outbox entry's id)."""
    event_type = STOCK_EVENTS[kind]
    data = {"product_id": product_id, "available": available, "low_stock_threshold": threshold or None}
    return MerchantEvent(event_type, f"product:{product_id}", f"{event_type}:{product_id}:{stream_id}", at, data)


def body(event_id: str, event: MerchantEvent) -> str:
    """The JSON sent to the merchant, exactly."""
    document = {"id": event_id, "type": event.type, "created_at": _iso(event.happened_at), "data": event.data}
    return orjson.dumps(document).decode()


def write(connection: sa.Connection, events: Sequence[MerchantEvent], *, now: datetime, deadline: timedelta) -> int:
    """Add the events to the merchant outbox in the caller's transaction, in order; a transition already
    written is skipped. Returns how many were new."""
    if not events:
        return 0
    rows = []
    for event in events:
        event_id = "evt_" + new_ulid()
        rows.append(
            {
                "id": event_id,
                "type": event.type,
                "stream": event.stream,
                "dedup_key": event.dedup_key,
                "body": body(event_id, event),
                "created_at": now,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "deadline_at": now + deadline,
            }
        )
    statement = insert(connection, merchant_events).on_conflict_do_nothing(index_elements=["dedup_key"])
    # An executemany runs its rows in order (psycopg pipelines them), so ``seq`` follows the events.
    return int(connection.execute(statement, rows, execution_options={"preserve_rowcount": True}).rowcount)
