"""The outbox event format, owned here: the event names, the fields of each, and the one builder of an order's fields.

The outbox (``fs:{<product>}:outbox``) crosses from Redis to PostgreSQL. Its writers are the Lua scripts
(``emit``, ``expire_hold`` and ``stock_moved`` in engine/lua/_prelude.lua; each script's header names the events
it writes) and, for a payment the engine cannot write (its order long forgotten), ``payment_event`` here. Its
readers are the drain (persistence/order_writes.py, through ``read_order``, ``read_payment`` and ``read_stock``)
and the drain's log (workers/drain.py, through ``read_hold``). tests/test_engine_outbox.py runs every script
against Redis and checks each entry carries exactly the fields ``FIELDS`` declares for its event, in that order.

To add an event type:
1. name it below and declare its fields in ``FIELDS``, in the order the writer appends them (``HEADER`` first);
2. write it: an ``XADD`` in the script that makes the change (and the event's name in that script's
   ``-- outbox:`` header line), or a builder here for an event Python writes;
3. teach the drain to read it (persistence/order_writes.py): an event type the drain does not know stops
   that product's drain rather than be dropped, so deploy the reader before the writer;
4. make ``every_script_once_each_way`` in tests/test_engine_outbox.py run the script so that it writes the
   event: the contract test fails until every script writes exactly the events its header names (a new script
   too), and each with exactly the fields declared here. An event written from Python gets a test like
   ``test_a_payment_written_from_python_has_the_fields_settle_writes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar, cast

from engine.exceptions import EventUnreadable
from engine.types import (
    CANCEL_REASONS,
    ORDER_STATUSES,
    PAYMENT_RESULTS,
    CancelReason,
    Order,
    OutboxEvent,
    PaymentResult,
)

S = TypeVar("S", bound=str)

ORDER_CREATED = "order_created"
ORDER_PAID = "order_paid"
ORDER_CANCELLED = "order_cancelled"
ORDER_REVIVED = "order_revived"
PAYMENT_PROCESSING = "payment_processing"
PAYMENT = "payment"
HOLD_EXPIRED = "hold_expired"
PRODUCT_STOCK = "product_stock"
"""A stock transition (``STOCK_KINDS``), written by ``stock_moved`` in engine/lua/_prelude.lua: the merchant hears
it; no row of its own."""

HEADER = ("event", "at")
"""Every event starts with its name and the Redis time it was written at (epoch ms)."""
ORDER = (
    "order_id",
    "product_id",
    "hold_id",
    "customer_id",
    "quantity",
    "amount_cents",
    "status",
    "created_ms",
    "expires_ms",
    "closed_ms",
    "note",
)
"""The whole order, as every order event carries it, so that events may be applied in any order, or twice.
``customer_id`` is '' for none, ``closed_ms`` 0 while pending, ``note`` the paying transaction or the cancel reason;
while pending, the transaction whose ``processing`` used the order's one payment grace ('' until then), which the
drain keeps (``orders.processing_transaction_id``) so that a rebuild knows the grace is used."""
PAYMENT_RESULT = ("transaction_id", "result", "applied", "refund_required", "payload")
"""What a payment adds to its order: ``applied`` and ``refund_required`` are '0' or '1'; ``payload`` the raw
webhook body."""
HOLD = ("product_id", "hold_id", "customer_id", "quantity")
STOCK = ("product_id", "kind", "available", "threshold")
"""A stock transition: ``kind`` one of ``STOCK_KINDS``, ``available`` after it, ``threshold`` the product's
low-stock threshold (0 for none)."""
STOCK_KINDS = ("sold_out", "back_in_stock", "low_stock")
OPTIONAL = ("revived",)
"""Fields an order event may carry that no writer writes, read as absent: ``revived`` ('1' on a paid order: paid
after it had expired; ``order_revived`` says so by its name). A field a writer writes is declared in ``FIELDS``."""

FIELDS: dict[str, tuple[str, ...]] = {
    ORDER_CREATED: (*HEADER, *ORDER),
    ORDER_PAID: (*HEADER, *ORDER),
    ORDER_CANCELLED: (*HEADER, *ORDER),
    ORDER_REVIVED: (*HEADER, *ORDER),
    PAYMENT_PROCESSING: (*HEADER, *ORDER, "transaction_id"),
    PAYMENT: (*HEADER, *ORDER, *PAYMENT_RESULT),
    HOLD_EXPIRED: (*HEADER, *HOLD),
    PRODUCT_STOCK: (*HEADER, *STOCK),
}
"""Each event's fields, in the order they are written."""

ORDER_EVENTS = frozenset({ORDER_CREATED, ORDER_PAID, ORDER_CANCELLED, ORDER_REVIVED, PAYMENT_PROCESSING, PAYMENT})
"""The events that carry the whole order: the drain writes an order row from each."""


def order_fields(order: Order) -> dict[str, str]:
    """The order's fields, as every order event carries them (engine/lua/_prelude.lua ``emit`` writes the same)."""
    return {
        "order_id": order.order_id,
        "product_id": str(order.product_id),
        "hold_id": order.hold_id,
        "customer_id": order.customer_id or "",
        "quantity": str(order.quantity),
        "amount_cents": str(order.amount_cents),
        "status": order.status,
        "created_ms": str(order.created_at_ms),
        "expires_ms": str(order.expires_at_ms),
        "closed_ms": str(order.closed_at_ms or 0),
        "note": order.note,
    }


@dataclass(frozen=True, slots=True)
class Payment:
    """What a ``payment`` event says of the payment itself (its order is ``read_order``'s)."""

    transaction_id: str
    result: PaymentResult
    applied: bool
    refund_required: bool
    payload: str
    """The raw webhook body ('' for none)."""


def entry(product_id: int, entry_id: str, fields: dict[str, str]) -> OutboxEvent:
    """A stream entry as an event: its name is its ``event`` field ('' for none, which the drain refuses)."""
    return OutboxEvent(product_id, entry_id, fields.get("event", ""), fields)


def payment_event(order: Order, payment: Payment, at_ms: int) -> OutboxEvent:
    """A ``payment`` event written from Python, as ``settle.lua`` writes one (its stream id is '0-0': it never
    was in a stream)."""
    fields = {
        "event": PAYMENT,
        "at": str(at_ms),
        **order_fields(order),
        "transaction_id": payment.transaction_id,
        "result": payment.result,
        "applied": _flag(payment.applied),
        "refund_required": _flag(payment.refund_required),
        "payload": payment.payload,
    }
    return OutboxEvent(order.product_id, "0-0", PAYMENT, fields)


def read_at(fields: Mapping[str, str]) -> int:
    """When the event was written (epoch ms, Redis time)."""
    return _int(fields, "at")


def read_order(fields: Mapping[str, str]) -> Order:
    """The order an order event carries; ``EventUnreadable`` names the first field that is missing or wrong."""
    status = _choice(fields, "status", ORDER_STATUSES)
    note = _field(fields, "note")
    closed = _int(fields, "closed_ms") if status != "pending" else None
    if status == "cancelled" and note not in CANCEL_REASONS:
        raise EventUnreadable(f"cancel reason {note!r}")
    return Order(
        order_id=_field(fields, "order_id"),
        hold_id=_field(fields, "hold_id"),
        product_id=_int(fields, "product_id"),
        customer_id=_field(fields, "customer_id") or None,
        quantity=_int(fields, "quantity"),
        amount_cents=_int(fields, "amount_cents"),
        status=status,
        created_at_ms=_int(fields, "created_ms"),
        expires_at_ms=_int(fields, "expires_ms"),
        closed_at_ms=closed,
        transaction_id=note if status == "paid" else None,
        cancel_reason=cast(CancelReason, note) if status == "cancelled" else None,
        revived=fields.get("event") == ORDER_REVIVED or (status == "paid" and fields.get("revived") == "1"),
        processing_transaction_id=(note or None) if status == "pending" else None,
    )


def read_payment(fields: Mapping[str, str]) -> Payment:
    """The payment a ``payment`` event carries."""
    result = _choice(fields, "result", PAYMENT_RESULTS)
    applied = _read_flag(fields, "applied")
    # Events written before settle carried the flag: a success not applied always needed a refund then.
    refund = _read_flag(fields, "refund_required", _flag(result == "success" and not applied))
    return Payment(_field(fields, "transaction_id"), result, applied, refund, fields.get("payload", ""))


@dataclass(frozen=True, slots=True)
class ExpiredHold:
    hold_id: str | None
    customer_id: str | None
    quantity: int


def read_hold(fields: Mapping[str, str]) -> ExpiredHold:
    """The hold a ``hold_expired`` event tells of, for the log (nothing is stored from it: never refused)."""
    return ExpiredHold(fields.get("hold_id"), fields.get("customer_id") or None, int(fields.get("quantity", "0")))


@dataclass(frozen=True, slots=True)
class StockMove:
    """What a ``product_stock`` event says: the product's ``available`` crossed 0 or its low-stock threshold."""

    product_id: int
    kind: str
    available: int
    threshold: int


def read_stock(fields: Mapping[str, str]) -> StockMove:
    """The stock transition a ``product_stock`` event carries."""
    kind = _choice(fields, "kind", STOCK_KINDS)
    return StockMove(_int(fields, "product_id"), kind, _int(fields, "available"), _int(fields, "threshold"))


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _field(fields: Mapping[str, str], name: str) -> str:
    try:
        return fields[name]
    except KeyError:
        raise EventUnreadable(f"missing field {name!r}") from None


def _int(fields: Mapping[str, str], name: str) -> int:
    value = _field(fields, name)
    try:
        return int(value)
    except ValueError:
        raise EventUnreadable(f"field {name!r} is not an integer") from None


def _choice(fields: Mapping[str, str], name: str, allowed: tuple[S, ...]) -> S:
    value = _field(fields, name)
    if value not in allowed:
        raise EventUnreadable(f"field {name!r} is {value!r}")
    return value


def _read_flag(fields: Mapping[str, str], name: str, default: str | None = None) -> bool:
    value = fields.get(name, default) if default is not None else _field(fields, name)
    if value not in ("0", "1"):
        raise EventUnreadable(f"field {name!r} is {value!r}")
    return value == "1"
