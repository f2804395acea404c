"""One call description per script: which script, its KEYS and ARGV, and how to read its reply.

The sync and asyncio clients both run these; only the line that awaits differs.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from engine import exceptions as exc
from engine.ids import ParsedId, check_product_id, format_id, new_id, new_ulid, parse_id
from engine.keys import CLAIMS_COMPLETE_KEY, product_keys, product_slot, transaction_key
from engine.product_rules import (
    MAX_ADMISSION_TTL_SECONDS,
    MAX_ADMIT_PER_SECOND,
    MAX_PER_CUSTOMER,
    MAX_PRICE_CENTS,
    MAX_QUANTITY,
    MAX_STOCK,
)
from engine.text import encodable
from engine.tickets import format_ticket, new_secret, parse_ticket
from engine.types import (
    Cancellation,
    CancelReason,
    ClaimMode,
    Hold,
    HoldStatus,
    Order,
    OrderStatus,
    OutboxMark,
    PaymentProcessing,
    PaymentResult,
    ProductReserve,
    ReapResult,
    ReserveRequest,
    RestoredPayment,
    Settlement,
    Snapshot,
    StockChange,
    Ticket,
    TicketState,
    TransactionClaim,
    WaitingRoom,
    WaitingRoomSettings,
)

T = TypeVar("T")
Reply = list[Any]

REAP_BATCH = 200
MAX_REAP_BATCH = 10_000
QUEUE_UPKEEP_MS = 5
"""A waiting room's upkeep (reaping, admission expiry, the abandonment sweep) runs at most this often per product
(Redis time); joins and polls in between only admit, touch and answer (docs/waiting-room.md)."""
MAX_CUSTOMER_ID = 128
MAX_TRANSACTION_ID = 128
MAX_IDEMPOTENCY_KEY = 128
TRANSACTION_RETENTION_MS = 7 * 86_400_000
"""How long Redis remembers a transaction id's claim (as long as a product remembers it, see lua/_prelude.lua).
Past it, the durable record decides (api.settlement)."""
CLAIM_MODES: tuple[ClaimMode, ...] = ("claim", "confirm", "record")
MAX_ADMISSION_TTL_MS = MAX_ADMISSION_TTL_SECONDS * 1000
MAX_ABANDON_MS = 3_600_000
MAX_BUYER = MAX_CUSTOMER_ID

_HOLD_STATUS: dict[str, HoldStatus] = {"a": "active", "c": "converted", "r": "released", "x": "expired"}


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    script: str
    keys: list[str]
    args: Sequence[str | int | bytes]
    decode: Callable[[Reply], T]


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(value: Any) -> int:
    return int(text(value))


def _opt_ms(value: Any) -> int | None:
    ms = _int(value)
    return ms or None


def _check_encodable(value: str, name: str) -> str:
    if not encodable(value):
        raise ValueError(f"{name} must be text that UTF-8 can encode (no lone surrogates)")
    return value


def _check_text(value: str | None, name: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ValueError(f"{name} must be a non-empty string of at most {limit} characters")
    return _check_encodable(value, name)


def _check_count(value: int, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}")
    return value


def _hold(product_id: int, reply: Sequence[Any], offset: int = 1, available: int | None = None) -> Hold:
    ulid, qty, expires, state, order, customer = [text(v) for v in reply[offset : offset + 6]]
    return Hold(
        hold_id=format_id("hold", product_id, ulid),
        product_id=product_id,
        quantity=int(qty),
        customer_id=customer or None,
        expires_at_ms=int(expires),
        status=_HOLD_STATUS[state],
        order_id=format_id("order", product_id, order) if order else None,
        available=available,
    )


def _order(product_id: int, reply: Sequence[Any], offset: int = 1) -> Order:
    ulid, hold, qty, amount, status, created, expires, closed, note, customer = (
        text(v) for v in reply[offset : offset + 10]
    )
    revived = len(reply) > offset + 10 and text(reply[offset + 10]) == "1"
    order_status = cast(OrderStatus, status)
    return Order(
        order_id=format_id("order", product_id, ulid),
        hold_id=format_id("hold", product_id, hold),
        product_id=product_id,
        customer_id=customer or None,
        quantity=int(qty),
        amount_cents=int(amount),
        status=order_status,
        created_at_ms=int(created),
        expires_at_ms=int(expires),
        closed_at_ms=int(closed) or None,
        transaction_id=note if order_status == "paid" else None,
        cancel_reason=cast(CancelReason, note) if order_status == "cancelled" else None,
        revived=revived,
        processing_transaction_id=(note or None) if order_status == "pending" else None,
    )


def _raise_hold_error(hold: ParsedId, status: str, reply: Reply) -> None:
    hold_id = str(hold)
    if status == "hold_not_found":
        raise exc.HoldNotFound(hold_id)
    if status == "hold_expired":
        raise exc.HoldExpired(hold_id, _int(reply[1]))
    if status == "hold_already_used":
        raise exc.HoldAlreadyUsed(hold_id, format_id("order", hold.product_id, text(reply[1])))
    if status == "hold_released":
        raise exc.HoldReleased(hold_id)


def set_stock(
    product_id: int,
    total: int,
    *,
    price_cents: int = 0,
    max_per_customer: int = 0,
    starts_at_ms: int | None = None,
    ends_at_ms: int | None = None,
    waiting_room: WaitingRoomSettings | None = None,
    low_stock_threshold: int = 0,
) -> Call[StockChange]:
    """``waiting_room``: the product's waiting room (None: none). Opening one starts it empty, with a new secret
    seed whose SHA-256 is published at once; closing one drops its tickets."""
    keys = product_keys(product_id)
    _check_count(total, "total", 0, MAX_STOCK)
    _check_count(price_cents, "price_cents", 0, MAX_PRICE_CENTS)
    _check_count(max_per_customer, "max_per_customer", 0, MAX_PER_CUSTOMER)
    _check_count(low_stock_threshold, "low_stock_threshold", 0, MAX_STOCK)

    def decode(reply: Reply) -> StockChange:
        status = text(reply[0])
        if status == "stock_below_committed":
            raise exc.StockBelowCommitted(product_id, total, _int(reply[1]))
        created, total_, available, held, pending, sold = (_int(v) for v in reply[1:7])
        return StockChange(product_id, bool(created), total_, available, held, pending, sold)

    args: list[str | int] = [total, price_cents, max_per_customer, starts_at_ms or 0, ends_at_ms or 0, REAP_BATCH]
    args += room_args(waiting_room)
    args.append(low_stock_threshold)
    return Call("set_stock", keys.all(), args, decode)


def room_args(room: WaitingRoomSettings | None) -> list[str | int]:
    """A waiting room's part of ``set_stock``'s ARGV, checked; the seed is new, and used only if the room opens."""
    if room is None:
        return [0, 0, 0, "", "", 0]
    rate = room.admit_per_second
    if rate is not None:
        _check_count(rate, "admit_per_second", 1, MAX_ADMIT_PER_SECOND)
    _check_count(room.admission_ttl_ms, "admission_ttl_ms", 1, MAX_ADMISSION_TTL_MS)
    _check_count(room.abandon_ms, "abandon_ms", 1, MAX_ABANDON_MS)
    seed = secrets.token_hex(32)
    digest = hashlib.sha256(seed.encode()).hexdigest()
    return [1, rate or 0, room.admission_ttl_ms, seed, digest, room.abandon_ms]


def scoped_idempotency_key(scope: str, key: str) -> str:
    """The field an Idempotency-Key is stored under: its caller's identity and the key, as one digest.

    ``scope`` is the caller's identity, which is the hold's customer id ('' for a caller that gives none,
    and, once buyers carry signed tokens, the verified buyer, which becomes the customer id). Two callers'
    equal keys are two entries, so one caller's key never finds another's hold. The digest is 16 bytes of
    BLAKE2b (22 characters of base64url) whatever the key's length; the length prefix keeps every (scope,
    key) pair apart.
    """
    digest = hashlib.blake2b(f"{len(scope)}:{scope}{key}".encode(), digest_size=16).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class PreparedReserve:
    """One reserve, checked, with its hold id chosen: what ``reserve`` and ``reserve_batch`` send."""

    product_id: int
    quantity: int
    ulid: str
    customer: str
    """'' for none, as the scripts take it."""
    idempotency_key: str
    """The key as the caller gave it ('' for none): entries written before keys were scoped are stored under it."""
    scoped_key: str
    """``scoped_idempotency_key(customer, idempotency_key)`` ('' for none): where the key is stored now."""
    admission: bytes = b""
    """The waiting room's admission, as the scripts take it (``ParsedTicket.admission_arg``); b'' for none."""

    def batch_args(self) -> list[str | int | bytes]:
        """This reserve's part of a ``reserve_batch`` call's ARGV."""
        return [self.quantity, self.ulid, self.customer, self.scoped_key, self.idempotency_key, self.admission]

    def decode(self, reply: Reply) -> Hold:
        status = text(reply[0])
        if status == "ok":
            return _hold(self.product_id, reply, available=_int(reply[7]))
        if status == "product_not_found":
            raise exc.ProductNotFound(self.product_id)
        if status == "sale_not_active":
            raise exc.SaleNotActive(self.product_id, _int(reply[1]), _int(reply[2]), _int(reply[3]))
        if status == "limit_exceeded":
            raise exc.LimitExceeded(self.product_id, self.customer, _int(reply[1]), _int(reply[2]), self.quantity)
        if status == "out_of_stock":
            raise exc.OutOfStock(self.product_id, self.quantity, _int(reply[1]))
        if status == "admission_required":
            raise exc.AdmissionRequired(self.product_id, text(reply[1]))
        raise exc.EngineError(f"reserve: unexpected reply {status!r}")


def reserve_request(
    product_id: int,
    quantity: int,
    *,
    customer_id: str | None = None,
    hold_id: str | None = None,
    idempotency_key: str | None = None,
    admission: str | None = None,
) -> PreparedReserve:
    """Check a reserve's arguments (ValueError, InvalidId) before it is sent alone or in a batch.

    ``admission``: the waiting room's admission token (engine.tickets); one of another product is invalid."""
    product_keys(product_id)  # checks the product id
    if hold_id is None:
        ulid = new_ulid()
    else:
        hold = parse_id(hold_id, "hold")
        if hold.product_id != product_id:
            raise exc.InvalidId(hold_id, "hold")
        ulid = hold.ulid
    _check_count(quantity, "quantity", 1, MAX_QUANTITY)
    customer = _check_text(customer_id, "customer_id", MAX_CUSTOMER_ID)
    idem = _check_text(idempotency_key, "idempotency_key", MAX_IDEMPOTENCY_KEY)
    scoped = scoped_idempotency_key(customer, idem) if idem else ""
    admission_arg = b""
    if admission is not None:
        token = parse_ticket(admission, "admission")
        if token.product_id != product_id:
            raise exc.InvalidId(admission, "admission")
        admission_arg = token.admission_arg()
    return PreparedReserve(product_id, quantity, ulid, customer, idem, scoped, admission_arg)


def prepare(product_id: int, requests: Sequence[ReserveRequest]) -> list[PreparedReserve]:
    """Check every request of a batch before any is sent: one bad argument refuses the whole call."""
    return [
        reserve_request(
            product_id,
            r.quantity,
            customer_id=r.customer_id,
            hold_id=r.hold_id,
            idempotency_key=r.idempotency_key,
            admission=r.admission,
        )
        for r in requests
    ]


def prepare_across(requests: Sequence[ProductReserve]) -> list[PreparedReserve]:
    """``prepare`` for reserves of several products: one bad argument refuses the whole call."""
    return [
        reserve_request(
            r.product_id,
            r.request.quantity,
            customer_id=r.request.customer_id,
            hold_id=r.request.hold_id,
            idempotency_key=r.request.idempotency_key,
            admission=r.request.admission,
        )
        for r in requests
    ]


def reserve(
    product_id: int,
    quantity: int,
    ttl_ms: int,
    *,
    customer_id: str | None = None,
    hold_id: str | None = None,
    idempotency_key: str | None = None,
    admission: str | None = None,
) -> Call[Hold]:
    request = reserve_request(
        product_id,
        quantity,
        customer_id=customer_id,
        hold_id=hold_id,
        idempotency_key=idempotency_key,
        admission=admission,
    )
    return reserve_alone(request, ttl_ms)


def reserve_alone(request: PreparedReserve, ttl_ms: int) -> Call[Hold]:
    """A checked reserve sent in a script call of its own (``reserve.lua``), not in a batch."""
    args: list[str | int | bytes] = [
        request.quantity,
        request.ulid,
        ttl_ms,
        request.customer,
        request.scoped_key,
        request.idempotency_key,
        REAP_BATCH,
        request.admission,
    ]
    return Call("reserve", product_keys(request.product_id).all(), args, request.decode)


def reserve_batch(requests: Sequence[PreparedReserve], ttl_ms: int) -> Call[list[Hold | exc.EngineError]]:
    """Reserves of one or more products in one script call, each answered (a Hold or its error) as if made in turn.

    The requests are grouped by product (each product's keys once, its reserves in their order); the answers
    come back in the order of ``requests``. On Redis Cluster every product must hash to one slot (``by_slot``).
    """
    groups: dict[int, list[int]] = {}
    for i, request in enumerate(requests):
        groups.setdefault(request.product_id, []).append(i)
    keys: list[str] = []
    args: list[str | int | bytes] = [ttl_ms, REAP_BATCH, len(groups)]
    sent: list[int] = []
    for product_id, indices in groups.items():
        keys += product_keys(product_id).all()
        args.append(len(indices))
        for i in indices:
            args += requests[i].batch_args()
        sent += indices

    def decode(reply: Reply) -> list[Hold | exc.EngineError]:
        results: list[Hold | exc.EngineError | None] = [None] * len(requests)
        for i, item in zip(sent, reply, strict=True):
            request = requests[i]
            try:
                results[i] = request.decode(item)
            except exc.EngineError as error:
                results[i] = error
            except Exception as error:  # one unreadable answer is its caller's error, not the whole batch's
                unreadable = exc.EngineError(f"reserve: unreadable reply {item!r}")
                unreadable.__cause__ = error
                results[i] = unreadable
        return cast(list[Hold | exc.EngineError], results)

    return Call("reserve_batch", keys, args, decode)


def by_slot(requests: Sequence[PreparedReserve]) -> list[list[int]]:
    """The positions of ``requests`` grouped by their products' Redis Cluster hash slot, in first-seen order: each
    group can go in one ``reserve_batch`` call on a cluster."""
    groups: dict[int, list[int]] = {}
    for i, request in enumerate(requests):
        groups.setdefault(product_slot(request.product_id), []).append(i)
    return list(groups.values())


def _owner(owner: str | None) -> str:
    """The ``owner`` argument of a script: the verified buyer who asks, or '' for anyone (buyer auth off)."""
    return _check_text(owner, "owner", MAX_CUSTOMER_ID)


def release(hold_id: str, *, owner: str | None = None) -> Call[Hold]:
    """Release the hold; one that is not ``owner``'s (when given) is HoldNotFound and stays as it is."""
    hold = parse_id(hold_id, "hold")
    who = _owner(owner)

    def decode(reply: Reply) -> Hold:
        status = text(reply[0])
        if status == "ok":
            return _hold(hold.product_id, reply)
        _raise_hold_error(hold, status, reply)
        raise exc.EngineError(f"release: unexpected reply {status!r}")

    return Call("release", product_keys(hold.product_id).all(), [hold.ulid, who], decode)


def hold_status(hold_id: str, *, owner: str | None = None) -> Call[Hold]:
    """The hold, expired first if overdue; one that is not ``owner``'s (when given) is HoldNotFound."""
    hold = parse_id(hold_id, "hold")
    who = _owner(owner)

    def decode(reply: Reply) -> Hold:
        if text(reply[0]) == "hold_not_found":
            raise exc.HoldNotFound(hold_id)
        return _hold(hold.product_id, reply)

    return Call("hold_status", product_keys(hold.product_id).all(), [hold.ulid, who], decode)


def convert(hold_id: str, ttl_ms: int, order_id: str | None = None, *, owner: str | None = None) -> Call[Order]:
    hold = parse_id(hold_id, "hold")
    who = _owner(owner)
    order = parse_id(new_id("order", hold.product_id) if order_id is None else order_id, "order")
    if order.product_id != hold.product_id:
        raise exc.InvalidId(str(order), "order")

    def decode(reply: Reply) -> Order:
        status = text(reply[0])
        if status == "ok":
            return _order(hold.product_id, reply)
        if status == "order_exists":
            raise exc.InvalidId(str(order), "order")
        _raise_hold_error(hold, status, reply)
        raise exc.EngineError(f"convert: unexpected reply {status!r}")

    return Call("convert", product_keys(hold.product_id).all(), [hold.ulid, order.ulid, ttl_ms, who], decode)


def check_transaction_id(transaction_id: str) -> str:
    txn = _check_text(transaction_id, "transaction_id", MAX_TRANSACTION_ID)
    if "|" in txn:
        # The paying transaction is stored inside the '|'-separated order record (see lua/_prelude.lua).
        raise ValueError("transaction_id must not contain '|'")
    return txn


def claim_transaction(
    transaction_id: str, order_id: str, mode: ClaimMode = "claim", *, marked: bool = False
) -> Call[TransactionClaim]:
    """Bind a transaction id to one order for the whole sale (see lua/claim_transaction.lua for the modes).

    ``marked``: pass the claim store's completeness mark too (one Redis only: on a cluster it is in another slot)."""
    txn = check_transaction_id(transaction_id)
    order = str(parse_id(order_id, "order"))
    if mode not in CLAIM_MODES:
        raise ValueError(f"mode must be one of {CLAIM_MODES}")

    def decode(reply: Reply) -> TransactionClaim:
        status = text(reply[0])
        if status == "taken":
            raise exc.TransactionReused(txn, order, text(reply[1]))
        if status not in ("claimed", "held"):
            raise exc.EngineError(f"claim_transaction: unexpected reply {status!r}")
        return TransactionClaim(txn, order, new=status == "claimed", confirmed=bool(_int(reply[1])))

    args: list[str | int] = [order, TRANSACTION_RETENTION_MS, mode]
    keys = [transaction_key(txn), CLAIMS_COMPLETE_KEY] if marked else [transaction_key(txn)]
    return Call("claim_transaction", keys, args, decode)


def release_transaction(transaction_id: str, order_id: str) -> Call[bool]:
    """Give back the order's claim (its order exists nowhere); True if it was deleted."""
    txn = check_transaction_id(transaction_id)
    order = str(parse_id(order_id, "order"))
    return Call("release_transaction", [transaction_key(txn)], [order], lambda reply: bool(_int(reply)))


def settle(order_id: str, transaction_id: str, result: PaymentResult, payload: str = "") -> Call[Settlement]:
    order = parse_id(order_id, "order")
    txn = check_transaction_id(transaction_id)
    if result not in ("success", "failed"):
        raise ValueError("result must be 'success' or 'failed'")
    _check_encodable(payload, "payload")

    def decode(reply: Reply) -> Settlement:
        status = text(reply[0])
        if status == "order_not_found":
            raise exc.OrderNotFound(order_id)
        if status == "duplicate_forgotten":
            # The transaction was applied to an order Redis no longer keeps (paid or cancelled > 24 h ago).
            raise exc.OrderNotFound(format_id("order", order.product_id, text(reply[2])))
        first = reply[:1] + reply[3:]
        return Settlement(
            order=_order(order.product_id, first),
            transaction_id=txn,
            result=result,
            applied=bool(_int(reply[1])),
            duplicate=status == "duplicate",
            refund_required=bool(_int(reply[2])),
            revived=status == "revived",
        )

    return Call("settle", product_keys(order.product_id).all(), [order.ulid, txn, result, payload], decode)


MAX_GRACE_MS = 7 * 86_400_000


def processing(order_id: str, transaction_id: str, grace_ms: int) -> Call[PaymentProcessing]:
    """A payment under way: a pending order's expiry moves, once, to ``grace_ms`` from now."""
    order = parse_id(order_id, "order")
    txn = check_transaction_id(transaction_id)
    _check_count(grace_ms, "grace_ms", 1, MAX_GRACE_MS)

    def decode(reply: Reply) -> PaymentProcessing:
        status = text(reply[0])
        if status == "order_not_found":
            raise exc.OrderNotFound(order_id)
        return PaymentProcessing(
            _order(order.product_id, reply), txn, extended=status == "extended", duplicate=status == "duplicate"
        )

    return Call("processing", product_keys(order.product_id).all(), [order.ulid, txn, grace_ms], decode)


def cancel(order_id: str, reason: CancelReason = "cancelled", *, owner: str | None = None) -> Call[Cancellation]:
    """Cancel the pending order; one that is not ``owner``'s (when given) is OrderNotFound and stays as it is."""
    order = parse_id(order_id, "order")
    who = _owner(owner)

    def decode(reply: Reply) -> Cancellation:
        status = text(reply[0])
        if status == "order_not_found":
            raise exc.OrderNotFound(order_id)
        if status == "order_not_pending":
            raise exc.OrderNotPending(order_id, text(reply[1]))
        return Cancellation(_order(order.product_id, reply), changed=status == "ok")

    return Call("cancel", product_keys(order.product_id).all(), [order.ulid, reason, who], decode)


def order_status(order_id: str, *, owner: str | None = None) -> Call[Order]:
    """The order, cancelled first if pending past its expiry; one that is not ``owner``'s (when given) is
    OrderNotFound."""
    order = parse_id(order_id, "order")
    who = _owner(owner)

    def decode(reply: Reply) -> Order:
        if text(reply[0]) == "order_not_found":
            raise exc.OrderNotFound(order_id)
        return _order(order.product_id, reply)

    return Call("order_status", product_keys(order.product_id).all(), [order.ulid, who], decode)


MAX_ORDER_STATES = 1000
"""Orders one ``order_states`` call reads at most."""


def order_states(product_id: int, order_ids: Sequence[str]) -> Call[dict[str, OrderStatus | None]]:
    """The stored status of each order of ``product_id`` (None: the engine does not know it), changing nothing."""
    keys = product_keys(product_id)
    if len(order_ids) > MAX_ORDER_STATES:
        raise ValueError(f"at most {MAX_ORDER_STATES} orders per call")
    ulids = []
    for order_id in order_ids:
        order = parse_id(order_id, "order")
        if order.product_id != product_id:
            raise exc.InvalidId(order_id, "order")
        ulids.append(order.ulid)

    def decode(reply: Reply) -> dict[str, OrderStatus | None]:
        return {
            order_id: cast(OrderStatus, text(status)) if text(status) else None
            for order_id, status in zip(order_ids, reply, strict=True)
        }

    return Call("order_states", keys.all(), list(ulids), decode)


def reap(product_id: int, batch: int = REAP_BATCH) -> Call[ReapResult]:
    keys = product_keys(product_id)
    _check_count(batch, "batch", 1, MAX_REAP_BATCH)

    def decode(reply: Reply) -> ReapResult:
        holds, orders, units, pruned, left = (_int(v) for v in reply[:5])
        return ReapResult(product_id, holds, orders, units, pruned, left)

    return Call("reap", keys.all(), [batch], decode)


def snapshot(product_id: int) -> Call[Snapshot]:
    def decode(reply: Reply) -> Snapshot:
        if text(reply[0]) == "product_not_found":
            raise exc.ProductNotFound(product_id)
        total, available, held, pending, sold, price, limit, starts, ends, now, backlog = (_int(v) for v in reply[1:12])
        room, rate, ttl = (_int(v) for v in reply[12:15])
        return Snapshot(
            product_id=product_id,
            total=total,
            available=available,
            held=held,
            pending=pending,
            sold=sold,
            price_cents=price,
            max_per_customer=limit,
            starts_at_ms=starts or None,
            ends_at_ms=ends or None,
            now_ms=now,
            outbox_backlog=backlog,
            waiting_room=bool(room),
            admit_per_second=(rate or None) if room else None,
            admission_ttl_ms=ttl if room else None,
        )

    return Call("snapshot", product_keys(product_id).all(), [REAP_BATCH], decode)


def outbox_mark(product_id: int) -> Call[OutboxMark]:
    def decode(reply: Reply) -> OutboxMark:
        return OutboxMark(product_id, _int(reply[0]), text(reply[1]))

    return Call("outbox_mark", product_keys(product_id).all(), [], decode)


def restore(
    product_id: int,
    *,
    mark: OutboxMark,
    total: int,
    price_cents: int,
    max_per_customer: int,
    starts_at_ms: int | None,
    ends_at_ms: int | None,
    sold: int,
    orders: Sequence[Order] = (),
    payments: Sequence[RestoredPayment] = (),
    customers: dict[str, int] | None = None,
    waiting_room: WaitingRoomSettings | None = None,
    low_stock_threshold: int = 0,
) -> Call[StockChange]:
    """Refused (``OutboxNotEmpty``, ``OutboxMoved``) unless ``mark`` was read with an empty outbox and no
    event was appended since: the snapshot then holds every event the product ever wrote. ``waiting_room`` as
    ``set_stock``'s: a room Redis still has keeps its tickets and seed, a room it lacks opens empty."""
    keys = product_keys(product_id)
    if mark.product_id != product_id:
        raise ValueError(f"the outbox mark of product {mark.product_id} cannot restore product {product_id}")
    if mark.backlog:
        # Events still in the outbox may be applied to PostgreSQL after the snapshot and deleted before the
        # restore: a mark is only good when everything before it was already in PostgreSQL.
        raise exc.OutboxNotEmpty(product_id, mark.backlog)
    quotas = customers or {}
    args: list[str | int] = [
        total,
        price_cents,
        max_per_customer,
        starts_at_ms or 0,
        ends_at_ms or 0,
        sold,
        len(orders),
        len(payments),
        len(quotas),
        mark.last_id,
        *room_args(waiting_room),
        _check_count(low_stock_threshold, "low_stock_threshold", 0, MAX_STOCK),
    ]
    state = {"pending": "p", "paid": "d", "cancelled": "c"}
    for o in orders:
        order = parse_id(o.order_id, "order")
        hold = parse_id(o.hold_id, "hold")
        if order.product_id != product_id or hold.product_id != product_id:
            raise exc.InvalidId(o.order_id, "order")
        args += [order.ulid, state[o.status], o.quantity, o.amount_cents, o.created_at_ms, o.expires_at_ms]
        note, customer = _check_encodable(o.note, "note"), _check_encodable(o.customer_id or "", "customer_id")
        args += [hold.ulid, o.closed_at_ms or 0, note, customer]
    for p in payments:
        paid = parse_id(p.order_id, "order")
        if paid.product_id != product_id:
            raise exc.InvalidId(p.order_id, "order")
        args += [_check_encodable(p.transaction_id, "transaction_id"), paid.ulid, p.result, int(p.applied)]
    for customer, units in quotas.items():
        args += [_check_encodable(customer, "customer_id"), units]

    def decode(reply: Reply) -> StockChange:
        status = text(reply[0])
        if status == "outbox_not_empty":
            raise exc.OutboxNotEmpty(product_id, _int(reply[1]))
        if status == "outbox_moved":
            raise exc.OutboxMoved(product_id, mark.last_id, text(reply[1]))
        if status == "stock_below_committed":
            raise exc.StockBelowCommitted(product_id, total, _int(reply[1]))
        total_, available, held, pending, sold_ = (_int(v) for v in reply[1:6])
        return StockChange(product_id, False, total_, available, held, pending, sold_)

    return Call("restore", keys.all(), args, decode)


_TICKET_STATES: frozenset[str] = frozenset({"waiting", "admitted", "used", "expired", "sold_out", "left"})


def _ticket(product_id: int, reply: Reply) -> Ticket:
    created, number = _int(reply[1]), _int(reply[2])
    secret, state = bytes(reply[3]), text(reply[4])
    if state not in _TICKET_STATES:
        raise exc.EngineError(f"queue: unexpected ticket state {state!r}")
    position, joined, expires = _int(reply[5]), _int(reply[6]), _int(reply[7])
    token = bytes(reply[8])
    now, starts, available, admitted, recent, window, rate = (_int(v) for v in reply[9:16])
    return Ticket(
        ticket=format_ticket("ticket", product_id, number, secret),
        product_id=product_id,
        number=number,
        state=cast(TicketState, state),
        position=position or None,
        joined_at_ms=joined,
        admission_token=format_ticket("admission", product_id, number, token) if token else None,
        admission_expires_at_ms=expires or None,
        created=bool(created),
        now_ms=now,
        sale_starts_at_ms=starts or None,
        available=available,
        admitted_unused=admitted,
        recent_admissions=recent,
        recent_window_ms=window,
        admit_per_second=rate or None,
    )


def check_buyer(buyer: str | None) -> str:
    return _check_text(buyer, "buyer", MAX_BUYER)


@dataclass(frozen=True, slots=True)
class PreparedJoin:
    """A join checked, its secrets chosen: it goes alone (``queue_join``) or with its product's others
    (``queue_join_batch``)."""

    product_id: int
    secret: bytes
    token: bytes
    buyer: str

    def batch_args(self) -> tuple[bytes, bytes, str]:
        """Its arguments in ``queue_join_batch``."""
        return self.secret, self.token, self.buyer

    def answer(self, reply: Reply) -> Ticket:
        status = text(reply[0])
        if status == "product_not_found":
            raise exc.ProductNotFound(self.product_id)
        if status == "queue_off":
            raise exc.WaitingRoomOff(self.product_id)
        if status == "sale_not_active":
            raise exc.SaleNotActive(self.product_id, _int(reply[1]), _int(reply[2]), _int(reply[3]))
        return _ticket(self.product_id, reply)


def prepare_join(product_id: int, buyer: str | None = None) -> PreparedJoin:
    """Join the product's waiting room: a new ticket, or ``buyer``'s own while it is not left or expired."""
    check_product_id(product_id)
    return PreparedJoin(product_id, new_secret(), new_secret(), check_buyer(buyer))


def queue_join(product_id: int, buyer: str | None = None) -> Call[Ticket]:
    """One join alone; an asyncio engine coalesces a product's concurrent joins (``queue_join_batch``)."""
    return join_alone(prepare_join(product_id, buyer))


def join_alone(join: PreparedJoin) -> Call[Ticket]:
    args: list[str | int | bytes] = [join.secret, join.token, join.buyer, REAP_BATCH, QUEUE_UPKEEP_MS]
    return Call("queue_join", product_keys(join.product_id).all(), args, join.answer)


def queue_join_batch(product_id: int, joins: Sequence[PreparedJoin]) -> Call[list[Ticket | exc.EngineError]]:
    """Joins of one product's room in one script call, each answered (a Ticket or its error) as if made in turn."""
    return _room_batch("queue_join_batch", "queue_join", product_id, joins)


def _room_batch(
    script: str, alone: str, product_id: int, requests: Sequence[PreparedJoin | PreparedPoll]
) -> Call[list[Ticket | exc.EngineError]]:
    """``script``, the batch form of ``alone``, for requests of one product's waiting room."""
    args: list[str | int | bytes] = [REAP_BATCH, QUEUE_UPKEEP_MS, len(requests)]
    for request in requests:
        if request.product_id != product_id:
            raise ValueError(f"{script}: a request of product {request.product_id}, not {product_id}")
        args += request.batch_args()
    return Call(script, product_keys(product_id).all(), args, _each_answered(requests, alone))


def _each_answered(
    requests: Sequence[PreparedJoin | PreparedPoll], script: str
) -> Callable[[Reply], list[Ticket | exc.EngineError]]:
    """The decoder of a batch's replies: each request's Ticket, or the error it met (alone)."""

    def decode(reply: Reply) -> list[Ticket | exc.EngineError]:
        results: list[Ticket | exc.EngineError] = []
        for request, item in zip(requests, reply, strict=True):
            try:
                results.append(request.answer(item))
            except exc.EngineError as error:
                results.append(error)
            except Exception as error:  # one unreadable answer is its caller's error, not the whole batch's
                unreadable = exc.EngineError(f"{script}: unreadable reply {item!r}")
                unreadable.__cause__ = error
                results.append(unreadable)
        return results

    return decode


@dataclass(frozen=True, slots=True)
class PreparedPoll:
    """A poll checked and parsed: it goes alone (``queue_poll``) or with its product's others (``queue_poll_batch``)."""

    ticket: str
    product_id: int
    number: int
    secret: bytes
    owner: str

    def batch_args(self) -> tuple[int, bytes, str]:
        """Its arguments in ``queue_poll_batch``."""
        return self.number, self.secret, self.owner

    def answer(self, reply: Reply) -> Ticket:
        if text(reply[0]) == "ticket_not_found":
            raise exc.TicketNotFound(self.ticket)
        return _ticket(self.product_id, reply)


def prepare_poll(ticket: str, owner: str | None = None) -> PreparedPoll:
    """``owner``: the verified buyer asking; another buyer's ticket is not found. InvalidId for a malformed
    ticket, before anything is sent."""
    parsed = parse_ticket(ticket)
    return PreparedPoll(ticket, parsed.product_id, parsed.number, parsed.secret, check_buyer(owner))


def queue_poll(poll: PreparedPoll) -> Call[Ticket]:
    """One poll alone; an asyncio engine coalesces a product's concurrent polls (``queue_poll_batch``)."""
    args: list[str | int | bytes] = [poll.number, poll.secret, REAP_BATCH, poll.owner, QUEUE_UPKEEP_MS]
    return Call("queue_poll", product_keys(poll.product_id).all(), args, poll.answer)


def queue_poll_batch(product_id: int, polls: Sequence[PreparedPoll]) -> Call[list[Ticket | exc.EngineError]]:
    """Polls of one product's tickets in one script call, each answered (a Ticket or its error) as if made in turn."""
    return _room_batch("queue_poll_batch", "queue_poll", product_id, polls)


def queue_leave(ticket: str, owner: str | None = None) -> Call[TicketState]:
    """Leave the waiting room; the ticket's state after (``left``, or ``used``/``expired`` left as they were)."""
    parsed = parse_ticket(ticket)
    who = check_buyer(owner)

    def decode(reply: Reply) -> TicketState:
        if text(reply[0]) == "ticket_not_found":
            raise exc.TicketNotFound(ticket)
        return cast(TicketState, text(reply[1]))

    args: list[str | int | bytes] = [parsed.number, parsed.secret, who]
    return Call("queue_leave", product_keys(parsed.product_id).all(), args, decode)


def queue_info(product_id: int) -> Call[WaitingRoom]:
    keys = product_keys(product_id)

    def decode(reply: Reply) -> WaitingRoom:
        if text(reply[0]) == "product_not_found":
            raise exc.ProductNotFound(product_id)
        if not _int(reply[1]):
            return WaitingRoom(product_id, on=False)
        seed = text(reply[4])
        starts, pre_last, waiting, admitted, joined, admitted_total, used, expired, left, rate, ttl, now, available = (
            _int(v) for v in reply[5:18]
        )
        recent, window = _int(reply[18]), _int(reply[19])
        return WaitingRoom(
            product_id,
            on=True,
            opened_at_ms=_int(reply[2]),
            seed_sha256=text(reply[3]),
            seed=seed or None,
            sale_starts_at_ms=starts or None,
            pre_queue_last=pre_last,
            waiting=waiting,
            admitted=admitted,
            joined_total=joined,
            admitted_total=admitted_total,
            used_total=used,
            expired_total=expired,
            left_total=left,
            admit_per_second=rate or None,
            admission_ttl_ms=ttl,
            now_ms=now,
            available=available,
            admissions_per_second=round(recent * 1000 / window, 2) if window else 0.0,
        )

    return Call("queue_info", keys.all(), [], decode)
