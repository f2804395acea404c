"""Apply engine outbox events to PostgreSQL: a batch in one transaction, idempotent and monotonic.

Every order event carries the whole order, so events may arrive twice or out of order:
- an order row is inserted, or moved from ``pending`` to its final status, never back;
- a payment row is inserted once per transaction id, after its order row (the payment's own
  snapshot creates the order if ``order_created`` has not been applied yet);
- a payment whose transaction id is already recorded for another order is a conflict: it is kept in
  ``payment_conflicts`` (once per transaction and order), never dropped, and returned to the caller to log;
- a pending order may move its expiry later (a payment in progress, ``processing``; the first such transaction is
  kept, ``processing_transaction_id``, as the mark that the order's one grace is used), and a cancelled order may
  become paid when the engine revived it (``revived``), the one move out of a final status;
- a success no order took records a refund request (``persistence.refunds``), once per charge;
- with ``merchant_events``, each transition adds its merchant event (``persistence.merchant_events``) in the
  same transaction, once.
Works the same on PostgreSQL and SQLite (``INSERT ... ON CONFLICT``). engine.outbox owns the events' format and
reads their fields; this module turns what it reads into rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa

from engine import outbox
from engine.exceptions import EventUnreadable
from engine.types import OutboxEvent
from persistence import merchant_events as merchant
from persistence.exceptions import MalformedEvent
from persistence.models import orders, payment_conflicts, payments
from persistence.payloads import payload_json
from persistence.refunds import record_requests, request_row
from persistence.times import from_ms
from persistence.upsert import insert

R = TypeVar("R")

_COUNT_ROWS = {"preserve_rowcount": True}
"""SQLAlchemy keeps an INSERT's rowcount only when asked."""

# What a later event may change on an order that is still pending.
_ORDER_UPDATES = (
    "status",
    "updated_at",
    "expires_at",
    "paid_at",
    "cancelled_at",
    "cancel_reason",
    "transaction_id",
    "revived",
)
MERCHANT_DEADLINE = timedelta(hours=24)
"""How long the merchant's events are tried before they are dead-lettered (workers.deliveries may say otherwise)."""


@dataclass(frozen=True)
class PaymentConflict:
    """A payment whose transaction id was already recorded for another order, as newly stored."""

    transaction_id: str
    order_id: str
    recorded_order_id: str
    product_id: int
    status: str
    applied: bool


@dataclass(frozen=True)
class AppliedBatch:
    events: int
    orders_written: int
    """Order rows inserted or moved forward; replays write none."""
    payments_written: int
    hold_expired: int
    conflicts: tuple[PaymentConflict, ...] = field(default=())
    """Conflicts this batch stored for the first time (a replayed batch finds them stored already)."""
    merchant_events: int = 0
    """Merchant events this batch added (a replayed batch adds none)."""


def _readable(event: OutboxEvent, read: Callable[[Mapping[str, str]], R]) -> R:
    try:
        return read(event.fields)
    except EventUnreadable as error:
        raise MalformedEvent(event, str(error)) from None


def order_row(event: OutboxEvent) -> dict[str, Any]:
    """The orders row of the order an order event carries (engine.outbox owns the fields)."""
    order = _readable(event, outbox.read_order)
    closed = None if order.closed_at_ms is None else from_ms(order.closed_at_ms)
    return {
        "id": order.order_id,
        "product_id": order.product_id,
        "hold_id": order.hold_id,
        "customer_id": order.customer_id,
        "quantity": order.quantity,
        "amount_cents": order.amount_cents,
        "status": order.status,
        "created_at": from_ms(order.created_at_ms),
        "updated_at": from_ms(_readable(event, outbox.read_at)),
        "expires_at": from_ms(order.expires_at_ms),
        "paid_at": closed if order.status == "paid" else None,
        "cancelled_at": closed if order.status == "cancelled" else None,
        "cancel_reason": order.cancel_reason,
        "transaction_id": order.transaction_id,
        "revived": order.revived,
        "processing_transaction_id": order.processing_transaction_id,
    }


def payment_row(event: OutboxEvent, order_id: str) -> dict[str, Any]:
    """The payments row of a ``payment`` event, whose order is ``order_id``."""
    payment = _readable(event, outbox.read_payment)
    return {
        "transaction_id": payment.transaction_id,
        "order_id": order_id,
        "status": payment.result,
        "applied": payment.applied,
        "received_at": from_ms(_readable(event, outbox.read_at)),
        "payload": payload_json(payment.payload),
        "refund_required": payment.refund_required,
    }


def stock_event(event: OutboxEvent) -> merchant.MerchantEvent:
    """The merchant event of a ``product_stock`` event (a stock transition: no row of its own)."""
    move = _readable(event, outbox.read_stock)
    at = from_ms(_readable(event, outbox.read_at))
    return merchant.for_stock(move.product_id, event.id, move.kind, move.available, move.threshold, at)


_STATUS_RANK = {"pending": 0, "cancelled": 1, "paid": 2}
"""How far each status is along the order's path: paid beats cancelled, as only a revival follows a cancel."""


def _advance(row: dict[str, Any]) -> tuple[int, datetime, bool]:
    return _STATUS_RANK[row["status"]], row["updated_at"], row["revived"]


def _later(new: dict[str, Any], old: dict[str, Any]) -> bool:
    """Whether ``new`` is a more advanced snapshot of the same order: a final status beats pending, paid beats
    cancelled (settle cancels an expired order and revives it in one script, both at the same millisecond), and
    a snapshot that says ``revived`` beats the same order paid without the flag (the ``payment`` event's)."""
    return _advance(new) > _advance(old)


@dataclass(frozen=True)
class BatchRows:
    orders: list[dict[str, Any]]
    """One per order: its most advanced snapshot."""
    payments: list[dict[str, Any]]
    """One per transaction id: the first event that names it."""
    reused: list[dict[str, Any]]
    """Later payments of the batch naming a transaction id already named for another order."""
    products: dict[str, int]
    """The product of each order a payment names."""
    hold_expired: int
    refunds: list[dict[str, Any]] = field(default_factory=list)
    """A refund request for each success no order took, with the order as that payment found it."""
    merchant: list[merchant.MerchantEvent] = field(default_factory=list)
    """The merchant events of the batch, in the outbox's order."""


def batch_rows(events: Sequence[OutboxEvent]) -> BatchRows:
    """The order rows, payment rows, reused transaction ids and hold expiries of a batch."""
    order_rows: dict[str, dict[str, Any]] = {}
    payment_rows: dict[str, dict[str, Any]] = {}
    products: dict[str, int] = {}
    reused: dict[tuple[str, str], dict[str, Any]] = {}
    refunds: dict[str, dict[str, Any]] = {}
    events_out: list[merchant.MerchantEvent] = []
    expired = 0
    for event in events:
        if event.event == outbox.HOLD_EXPIRED:
            expired += 1
            continue
        if event.event == outbox.PRODUCT_STOCK:
            events_out.append(stock_event(event))
            continue
        if event.event not in outbox.ORDER_EVENTS:
            raise MalformedEvent(event, "unknown event")
        row = order_row(event)
        seen = order_rows.get(row["id"])
        if seen is None or _later(row, seen):
            order_rows[row["id"]] = row
            if seen is not None:  # a later snapshot no longer names the processing: keep what the earlier said
                row["processing_transaction_id"] = row["processing_transaction_id"] or seen["processing_transaction_id"]
        elif seen["processing_transaction_id"] is None:
            seen["processing_transaction_id"] = row["processing_transaction_id"]
        announced = merchant.for_order(event.event, row)
        if announced is not None:
            events_out.append(announced)
        if event.event == outbox.PAYMENT:
            payment = payment_row(event, row["id"])
            products[payment["order_id"]] = row["product_id"]
            first = payment_rows.setdefault(payment["transaction_id"], payment)
            if first["order_id"] != payment["order_id"]:
                reused.setdefault((payment["transaction_id"], payment["order_id"]), payment)
            elif payment["refund_required"] and payment["transaction_id"] not in refunds:
                refund = request_row(payment, row)
                refunds[payment["transaction_id"]] = refund
                events_out.append(merchant.for_refund(refund))
    return BatchRows(
        list(order_rows.values()),
        list(payment_rows.values()),
        list(reused.values()),
        products,
        expired,
        list(refunds.values()),
        events_out,
    )


def _conflicts(connection: sa.Connection, rows: BatchRows, written: int) -> list[PaymentConflict]:
    """Store the batch's payments whose transaction id ``payments`` holds for another order; return the new ones.

    Called only when the batch reuses a transaction id or fewer payment rows were written than sent, so the
    usual batch pays nothing for the check.
    """
    maybe = rows.payments if written < len(rows.payments) else []
    txns = {p["transaction_id"] for p in [*maybe, *rows.reused]}
    statement = sa.select(payments.c.transaction_id, payments.c.order_id).where(payments.c.transaction_id.in_(txns))
    recorded: dict[str, str] = {txn: order_id for txn, order_id in connection.execute(statement)}
    now = datetime.now(UTC)
    stored = []
    for payment in [*maybe, *rows.reused]:
        txn, order_id = payment["transaction_id"], payment["order_id"]
        owner = recorded[txn]
        if owner == order_id:
            continue
        row = {
            "transaction_id": txn,
            "order_id": order_id,
            "recorded_order_id": owner,
            "product_id": rows.products[order_id],
            "status": payment["status"],
            "applied": payment["applied"],
            "received_at": payment["received_at"],
            "detected_at": now,
            "payload": payment["payload"],
        }
        new = insert(connection, payment_conflicts).on_conflict_do_nothing().returning(payment_conflicts.c.order_id)
        if connection.execute(new, row).first() is not None:
            stored.append(PaymentConflict(txn, order_id, owner, row["product_id"], row["status"], row["applied"]))
    return stored


def write_events(
    connection: sa.Connection,
    events: Sequence[OutboxEvent],
    *,
    merchant_events: bool = False,
    merchant_deadline: timedelta = MERCHANT_DEADLINE,
) -> AppliedBatch:
    """Write a batch in the caller's transaction: one executemany per table.

    The statement is compiled once and cached; psycopg 3 sends an executemany as one pipeline (a single
    network round trip), which measured twice as fast as multi-row VALUES, whose long, ever-different
    SQL text SQLAlchemy and psycopg must build and parse again for every batch.
    """
    rows = batch_rows(events)
    order_rows, payment_rows = rows.orders, rows.payments
    orders_written = payments_written = 0
    conflicts: list[PaymentConflict] = []
    if order_rows:
        upsert = insert(connection, orders)
        new = upsert.excluded
        upsert = upsert.on_conflict_do_update(
            index_elements=[orders.c.id],
            set_={
                **{name: new[name] for name in _ORDER_UPDATES},
                # The first processing used the one grace: a replayed or reordered event never replaces it.
                "processing_transaction_id": sa.func.coalesce(
                    orders.c.processing_transaction_id, new.processing_transaction_id
                ),
            },
            where=sa.or_(
                # pending → paid or cancelled, or a payment in progress: a later expiry, or the grace used (its
                # expiry may stay: a grace shorter than the order's own time left)
                sa.and_(
                    orders.c.status == "pending",
                    sa.or_(
                        new.status != "pending",
                        new.expires_at > orders.c.expires_at,
                        sa.and_(
                            orders.c.processing_transaction_id.is_(None), new.processing_transaction_id.is_not(None)
                        ),
                    ),
                ),
                # cancelled → paid: the engine revived a late payment
                sa.and_(orders.c.status == "cancelled", new.status == "paid", new.revived),
            ),
        )
        orders_written = connection.execute(upsert, order_rows, execution_options=_COUNT_ROWS).rowcount
    if payment_rows:
        new = insert(connection, payments).on_conflict_do_nothing(index_elements=[payments.c.transaction_id])
        payments_written = connection.execute(new, payment_rows, execution_options=_COUNT_ROWS).rowcount
        if rows.reused or payments_written < len(payment_rows):
            conflicts = _conflicts(connection, rows, payments_written)
    # A payment stored as a conflict belongs to another order's charge: reconcile reports it, no refund here.
    conflicted = {c.transaction_id for c in conflicts}
    record_requests(connection, [r for r in rows.refunds if r["transaction_id"] not in conflicted])
    announced = 0
    if merchant_events:
        now = datetime.now(UTC)
        kept = [e for e in rows.merchant if e.type != "refund.requested" or e.data["transaction_id"] not in conflicted]
        announced = merchant.write(connection, kept, now=now, deadline=merchant_deadline)
    return AppliedBatch(len(events), orders_written, payments_written, rows.hold_expired, tuple(conflicts), announced)


def apply_events(
    db: sa.Engine,
    events: Sequence[OutboxEvent],
    *,
    merchant_events: bool = False,
    merchant_deadline: timedelta = MERCHANT_DEADLINE,
) -> AppliedBatch:
    """Write a batch in one transaction; it has committed when this returns."""
    with db.begin() as connection:
        return write_events(connection, events, merchant_events=merchant_events, merchant_deadline=merchant_deadline)
