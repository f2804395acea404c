"""Typed results of engine calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

HoldStatus = Literal["active", "converted", "released", "expired"]
OrderStatus = Literal["pending", "paid", "cancelled"]
PaymentResult = Literal["success", "failed"]
CancelReason = Literal["payment_failed", "expired", "cancelled"]
ClaimMode = Literal["claim", "confirm", "record"]
TicketState = Literal["waiting", "admitted", "used", "expired", "sold_out", "left"]
ORDER_STATUSES: tuple[OrderStatus, ...] = get_args(OrderStatus)
CANCEL_REASONS: tuple[CancelReason, ...] = get_args(CancelReason)
PAYMENT_RESULTS: tuple[PaymentResult, ...] = get_args(PaymentResult)


@dataclass(frozen=True, slots=True)
class Hold:
    hold_id: str
    product_id: int
    quantity: int
    customer_id: str | None
    expires_at_ms: int
    status: HoldStatus
    order_id: str | None = None
    available: int | None = None
    """Units still available right after the reserve (set by ``reserve`` only)."""


@dataclass(frozen=True, slots=True)
class ReserveRequest:
    """One reserve of ``reserve_many``: the arguments ``reserve`` takes after the product id."""

    quantity: int
    customer_id: str | None = None
    hold_id: str | None = None
    idempotency_key: str | None = None
    admission: str | None = None


@dataclass(frozen=True, slots=True)
class ProductReserve:
    """One reserve of ``reserve_across``: a product, and the reserve of it."""

    product_id: int
    request: ReserveRequest


@dataclass(frozen=True, slots=True)
class Order:
    order_id: str
    hold_id: str
    product_id: int
    customer_id: str | None
    quantity: int
    amount_cents: int
    status: OrderStatus
    created_at_ms: int
    expires_at_ms: int
    closed_at_ms: int | None
    transaction_id: str | None
    """The transaction that paid the order."""
    cancel_reason: CancelReason | None
    revived: bool = False
    """Paid by a success that arrived after the order had expired unpaid, its units taken again."""
    processing_transaction_id: str | None = None
    """While pending: the transaction whose ``processing`` used the order's one payment grace (None: unused)."""

    @property
    def note(self) -> str:
        """What the engine stores of how the order closed: the paying transaction, or the cancel reason; while
        pending, the transaction whose ``processing`` extended it ('' for none)."""
        if self.status == "pending":
            return self.processing_transaction_id or ""
        return (self.transaction_id if self.status == "paid" else self.cancel_reason) or ""


@dataclass(frozen=True, slots=True)
class Settlement:
    order: Order
    transaction_id: str
    result: PaymentResult
    applied: bool
    duplicate: bool
    refund_required: bool
    """A success the order did not take: it was already cancelled (typically expired unpaid, its units gone
    since), or already paid by another transaction. The customer was charged for nothing and must be refunded."""
    revived: bool = False
    """This success revived the order: it had expired unpaid, and its units were still available."""


@dataclass(frozen=True, slots=True)
class PaymentProcessing:
    """A ``processing`` webhook applied to an order (``processing.lua``)."""

    order: Order
    transaction_id: str
    extended: bool
    """The order's expiry moved to the payment grace (its first ``processing``)."""
    duplicate: bool
    """This transaction's ``processing`` (or its result) was seen before: nothing changed."""


@dataclass(frozen=True, slots=True)
class TransactionClaim:
    """A transaction id bound to one order for the whole sale (``claim_transaction``)."""

    transaction_id: str
    order_id: str
    new: bool
    """Redis had no record of the id before this call (new, or forgotten: the durable record must decide)."""
    confirmed: bool
    """The durable record was consulted and names no other order: later deliveries need not ask it again."""


@dataclass(frozen=True, slots=True)
class Cancellation:
    order: Order
    changed: bool


@dataclass(frozen=True, slots=True)
class Snapshot:
    product_id: int
    total: int
    available: int
    held: int
    pending: int
    sold: int
    price_cents: int
    max_per_customer: int
    starts_at_ms: int | None
    ends_at_ms: int | None
    now_ms: int
    outbox_backlog: int
    waiting_room: bool = False
    admit_per_second: int | None = None
    admission_ttl_ms: int | None = None

    @property
    def consistent(self) -> bool:
        counters = (self.available, self.held, self.pending, self.sold)
        return min(counters) >= 0 and self.total == sum(counters)


@dataclass(frozen=True, slots=True)
class StockChange:
    product_id: int
    created: bool
    total: int
    available: int
    held: int
    pending: int
    sold: int


@dataclass(frozen=True, slots=True)
class ReapResult:
    product_id: int
    holds_expired: int
    orders_expired: int
    units_returned: int
    tombstones_pruned: int
    overdue_left: int


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One outbox entry: ``id`` is the stream id, ``fields`` the event as written by the script."""

    product_id: int
    id: str
    event: str
    fields: dict[str, str]


@dataclass(frozen=True, slots=True)
class OutboxMark:
    """Where a product's outbox stood: read before a snapshot of PostgreSQL that ``restore`` will apply."""

    product_id: int
    backlog: int
    """Events not yet drained; a restore needs a mark taken with none."""
    last_id: str
    """The stream's last generated id ('0-0' for none): any later event, even drained, moves it."""


@dataclass(frozen=True, slots=True)
class RestoredPayment:
    transaction_id: str
    order_id: str
    result: PaymentResult
    applied: bool


@dataclass(frozen=True, slots=True)
class WaitingRoomSettings:
    """A product's waiting room, as an operator sets it (docs/waiting-room.md)."""

    admit_per_second: int | None = None
    """Admissions a second at most; None: as fast as units can be sold."""
    admission_ttl_ms: int = 60_000
    """How long an admission may wait for its hold."""
    abandon_ms: int = 60_000
    """A waiting ticket not polled for this long is dropped (``left``)."""


@dataclass(frozen=True, slots=True)
class Ticket:
    """Where a waiting-room ticket stands (``queue_join``, ``queue_poll``)."""

    ticket: str
    product_id: int
    number: int
    state: TicketState
    position: int | None
    """1-based among those still waiting; None unless waiting, and before the start (the draw decides it)."""
    joined_at_ms: int
    admission_token: str | None
    admission_expires_at_ms: int | None
    created: bool
    now_ms: int
    sale_starts_at_ms: int | None
    available: int
    admitted_unused: int
    recent_admissions: int
    """Admissions in the last ``recent_window_ms``: the rate the estimate of a wait is made from."""
    recent_window_ms: int
    admit_per_second: int | None


@dataclass(frozen=True, slots=True)
class WaitingRoom:
    """A product's waiting room as the public and the operators see it (``queue_info``)."""

    product_id: int
    on: bool
    opened_at_ms: int | None = None
    seed_sha256: str | None = None
    seed: str | None = None
    """Revealed once the sale has started."""
    sale_starts_at_ms: int | None = None
    pre_queue_last: int = 0
    """Tickets 1 to this joined before the start: the pre-queue the seed shuffled."""
    waiting: int = 0
    admitted: int = 0
    """Admitted and not yet used or expired."""
    joined_total: int = 0
    admitted_total: int = 0
    used_total: int = 0
    expired_total: int = 0
    left_total: int = 0
    admit_per_second: int | None = None
    admission_ttl_ms: int | None = None
    now_ms: int = 0
    available: int = 0
    admissions_per_second: float = 0.0
    """Admissions a second over the last 10 to 20 s."""
