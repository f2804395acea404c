"""Every request body and every JSON answer of the API, declared once as msgspec Structs.

The routes decode bodies into these Structs (``api.validation.decode``), render answers from them
(``api.responses.json``), and ``api.openapi`` builds the document's schemas from them: nothing describes a body
twice. The bounds come from their owners (``engine.product_rules``, ``engine.calls``, ``engine.ids``), never
written here.

How to declare a new one:

- **A request body**: a Struct with ``forbid_unknown_fields=True`` (leave it out only where the sender adds fields
  of its own, as a payment provider does). Type each field with a constrained type below, or a new
  ``Annotated[..., Meta(...)]`` with its bounds; a string says how its fault is worded with ``extra={"kind": ...}``
  (``KINDS``; ``api.validation.Fields._check`` words each kind, and words integers, booleans and ``Literal``
  choices by themselves; a type it cannot word is refused the first time the body is decoded). A field without a
  default is required; ``X | None = None`` is optional and takes null.
  The route reads it with ``body = decode(await read_json(request), TheBody)``: a body at fault is a 422
  ``validation_error`` listing every field with a stable message, before any engine call. A header checked with
  the body goes in ``decode``'s ``headers`` (``routes/holds.py``: the Idempotency-Key); a rule JSON Schema cannot
  state, between two fields, in its ``also`` (``routes/admin.py``: the sale window).
  Add the body to ``BODIES`` in ``tests/test_api_bodies.py``: it proves msgspec and the worded reading agree on it.
- **An answer**: a Struct whose fields are in the order they are sent; the route returns ``json(TheAnswer(...))``.
  A field sent only sometimes is ``X | UnsetType = UNSET`` in a Struct with ``omit_defaults=True``
  (``WebhookResult.refund_status``). A problem answer's new field goes in ``Problem`` the same way.
- **The document**: add the Struct to ``SCHEMAS`` and name it in a path of ``api.openapi`` with ``ref(TheStruct)``
  (``_body(TheBody)`` for a request body); security schemes and problem codes are listed there too.
  Patterns are written in ECMA-262 (the document's dialect); ``_python`` gives msgspec the same rule in Python's.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from engine.calls import MAX_CUSTOMER_ID, MAX_IDEMPOTENCY_KEY, MAX_TRANSACTION_ID
from engine.ids import MAX_PRODUCT_ID
from engine.product_rules import (
    DEFAULT_ADMISSION_TTL_SECONDS,
    MAX_ADMISSION_TTL_SECONDS,
    MAX_ADMIT_PER_SECOND,
    MAX_NAME,
    MAX_PER_CUSTOMER,
    MAX_PRICE_CENTS,
    MAX_QUANTITY,
    MAX_STOCK,
    NOT_BLANK_PATTERN,
    SALE_BOUND_PATTERN,
)
from engine.text import TEXT_PATTERN
from persistence.refunds import RefundStatus
from reconciliation.compare import Remedy

KINDS = ("text", "name", "hold", "order", "sale_bound")
"""How a string field's fault is worded (``api.validation.Fields.explain``): free text; a product name (text that
is not blank); a hold or an order id; a sale window's bound."""

HOLD_ID_PATTERN = "^h[1-9][0-9]{0,14}_[0-9A-HJKMNP-TV-Z]{26}$"
ORDER_ID_PATTERN = "^o[1-9][0-9]{0,14}_[0-9A-HJKMNP-TV-Z]{26}$"
MAX_ID_LENGTH = 48
"""``engine.ids.parse_id`` refuses a longer id before it reads it."""
CONTROL_RANGES = "\\u0000-\\u001F\\u007F-\\u009F"
"""The characters ``TEXT_PATTERN`` refuses, as a class's ranges."""


def _python(pattern: str) -> str:
    """An ECMA-262 pattern as Python's ``re.search`` (msgspec's) reads it the same: Python's ``$`` also matches
    before a final newline, so the end of the text is written ``\\Z``. ``api.openapi`` writes it back as ``$``."""
    return pattern[:-1] + "\\Z" if pattern.endswith("$") else pattern


def _text(max_length: int, *, kind: str = "text", pattern: str = TEXT_PATTERN, refuse: str = "", **schema: Any) -> Meta:
    """Text of 1 to ``max_length`` characters matching ``pattern``; ``refuse``: characters it names in a fault."""
    extra = {"kind": kind, "refuse": refuse} if refuse else {"kind": kind}
    return Meta(min_length=1, max_length=max_length, pattern=_python(pattern), extra=extra, **schema)


def _without(characters: str) -> str:
    """``TEXT_PATTERN`` that also refuses ``characters``."""
    return f"^[^{characters}{CONTROL_RANGES}]+$"


def _not_blank_text() -> str:
    """``TEXT_PATTERN`` and ``NOT_BLANK_PATTERN`` (a class ``[^...]``) in one pattern, as msgspec takes one: text
    with a character that is neither a control character nor white space."""
    white_space = NOT_BLANK_PATTERN.removeprefix("[^").removesuffix("]")
    return f"^[^{CONTROL_RANGES}]*[^{CONTROL_RANGES}{white_space}][^{CONTROL_RANGES}]*$"


_TIMESTAMP = {"format": "date-time", "example": "2026-11-28T01:19:44.123Z"}
_LAPSES = "When the order lapses if it is still unpaid."
_SALE_BOUND = {
    "format": "date-time",
    "description": "An RFC 3339 date-time in the years 2000 to 2999, whole seconds 00-59 (no leap second), "
    "at most 9 digits of fraction.",
}

# Fields of request bodies: each carries its bounds, its pattern and how a fault in it is worded.
ProductId = Annotated[int, Meta(ge=1, le=MAX_PRODUCT_ID)]
Quantity = Annotated[int, Meta(ge=1, le=MAX_QUANTITY)]
IdempotencyKey = Annotated[str, _text(MAX_IDEMPOTENCY_KEY)]
"""The ``Idempotency-Key`` header's value."""
CustomerId = Annotated[
    str,
    _text(
        MAX_CUSTOMER_ID,
        description="Counts against max_per_customer. With buyer tokens it is the token's `sub`: leave it out, or "
        "send the same.",
    ),
]
ShopperName = Annotated[str, _text(MAX_CUSTOMER_ID, description="The shopper: the token's `sub`.")]
HoldId = Annotated[
    str,
    Meta(
        pattern=_python(HOLD_ID_PATTERN),
        max_length=MAX_ID_LENGTH,
        extra={"kind": "hold"},
        extra_json_schema={"example": "h42_01JD0Z3N5W8YQ2T4V6X8Z0A1B2"},
    ),
]
OrderId = Annotated[
    str,
    Meta(
        pattern=_python(ORDER_ID_PATTERN),
        max_length=MAX_ID_LENGTH,
        extra={"kind": "order"},
        extra_json_schema={"example": "o42_01JD0Z3N5W8YQ2T4V6X8Z0A1B3"},
    ),
]
TransactionId = Annotated[
    # No '|': the engine keeps the paying transaction inside a '|'-separated record (engine/lua/_prelude.lua).
    str,
    _text(MAX_TRANSACTION_ID, pattern=_without("|"), refuse="|"),
]
PaymentResult = Literal["success", "failed"]
WebhookStatus = Annotated[
    Literal["success", "failed", "processing", "refunded"],
    Meta(
        description="`processing`: the payment is under way (3-D Secure, a bank app); a pending order's expiry "
        "moves, once, to FLASHSALE_PAYMENT_GRACE_SECONDS (600) from now. "
        "`success` pays the order (or, after it expired unpaid, revives it when the units are still "
        "available, else asks for a refund); `failed` cancels it; `refunded`, with the original transaction id, "
        "confirms that the provider gave back a charge flashsale asked to refund."
    ),
]
Name = Annotated[
    str,
    _text(MAX_NAME, kind="name", pattern=_not_blank_text(), description="Not blank: a character besides white space."),
]
PriceCents = Annotated[int, Meta(ge=0, le=MAX_PRICE_CENTS)]
Stock = Annotated[int, Meta(ge=0, le=MAX_STOCK, description="Total units; never below those held, pending or sold.")]
LowStockThreshold = Annotated[
    int,
    Meta(
        ge=0,
        le=MAX_STOCK,
        description="Below it (and above 0), the merchant hears product.low_stock; 0 or null: never.",
    ),
]
MaxPerCustomer = Annotated[int, Meta(ge=0, le=MAX_PER_CUSTOMER, description="0 or null: no limit.")]
SaleStartsAt = Annotated[
    str,
    Meta(
        pattern=_python(SALE_BOUND_PATTERN),
        extra={"kind": "sale_bound"},
        extra_json_schema={**_SALE_BOUND, "description": "null: on sale from now.", "example": "2026-11-28T09:00:00Z"},
    ),
]
SaleEndsAt = Annotated[
    str,
    Meta(
        pattern=_python(SALE_BOUND_PATTERN),
        extra={"kind": "sale_bound"},
        extra_json_schema={
            **_SALE_BOUND,
            "description": "null: no end. When both bounds are set, it must be after sale_starts_at "
            "(otherwise 422 naming sale_ends_at).",
            "example": "2026-11-28T21:00:00Z",
        },
    ),
]

# Fields of answers.
Timestamp = Annotated[str, Meta(extra_json_schema=_TIMESTAMP)]
Units = Annotated[int, Meta(ge=0)]
OrderStatus = Literal["pending", "paid", "cancelled"]
CancelReason = Literal["payment_failed", "expired", "cancelled"]
Ok = Literal["ok"]


class HoldRequest(Struct, forbid_unknown_fields=True):
    product_id: ProductId
    quantity: Quantity
    customer_id: CustomerId | None = None


class OrderRequest(Struct, forbid_unknown_fields=True):
    hold_id: HoldId


class WebhookRequest(Struct):
    """Other fields are allowed and kept with the payment record."""

    order_id: OrderId
    transaction_id: TransactionId
    status: WebhookStatus


WaitingRoomOn = Annotated[bool, Meta(description="Holds need an admission from the product's waiting room.")]
AdmitPerSecond = Annotated[
    int, Meta(ge=1, le=MAX_ADMIT_PER_SECOND, description="The waiting room's admissions a second; null: no cap.")
]
AdmissionTtl = Annotated[
    int,
    Meta(
        ge=1,
        le=MAX_ADMISSION_TTL_SECONDS,
        description=f"How long an admission waits for its hold (default {DEFAULT_ADMISSION_TTL_SECONDS}).",
    ),
]
TICKET_PATTERN = "^q[1-9][0-9]{0,14}_[1-9][0-9]{0,14}_[0-9a-f]{16}$"
ADMISSION_PATTERN = "^a[1-9][0-9]{0,14}_[1-9][0-9]{0,14}_[0-9a-f]{16}$"
TicketText = Annotated[
    str, Meta(pattern=_python(TICKET_PATTERN), max_length=64, extra_json_schema={"example": "q42_17_3f0c9d1e5a7b2c44"})
]
AdmissionToken = Annotated[
    str,
    Meta(
        pattern=_python(ADMISSION_PATTERN),
        max_length=64,
        extra={"kind": "text"},
        extra_json_schema={"example": "a42_17_9b1e0c4d2f6a8e13"},
    ),
]
"""The ``X-Flashsale-Admission`` header's value."""
TicketState = Literal["waiting", "admitted", "used", "expired", "sold_out", "left"]


class ProductSpec(Struct, forbid_unknown_fields=True):
    """Every field is set: a field left out takes its default. One rule JSON Schema cannot state: sale_ends_at must
    be after sale_starts_at when both are set."""

    name: Name
    price_cents: PriceCents
    stock: Stock
    max_per_customer: MaxPerCustomer | None = None
    sale_starts_at: SaleStartsAt | None = None
    sale_ends_at: SaleEndsAt | None = None
    waiting_room: WaitingRoomOn | None = None
    admit_per_second: AdmitPerSecond | None = None
    admission_ttl_seconds: AdmissionTtl | None = None
    low_stock_threshold: LowStockThreshold | None = None


class DemoPaymentRequest(Struct, forbid_unknown_fields=True):
    order_id: OrderId
    status: PaymentResult


class DemoLoginRequest(Struct, forbid_unknown_fields=True):
    name: ShopperName


class DemoLogin(Struct):
    token: Annotated[str, Meta(description="A buyer token: send it as `Authorization: Bearer <token>`.")]
    sub: str
    expires_at: Timestamp


class Hold(Struct):
    hold_id: HoldId
    product_id: ProductId
    quantity: Annotated[int, Meta(ge=1)]
    customer_id: str | None
    expires_at: Timestamp


class ActiveHold(Hold):
    status: Literal["active"]


class Order(Struct):
    order_id: OrderId
    hold_id: HoldId
    product_id: ProductId
    customer_id: str | None
    quantity: Annotated[int, Meta(ge=1)]
    amount_cents: Annotated[int, Meta(ge=0, description="price_cents * quantity.")]
    status: OrderStatus
    created_at: Timestamp
    expires_at: Annotated[
        str, Meta(extra_json_schema={**_TIMESTAMP, "description": "When the order lapses if it is still unpaid."})
    ]
    closed_at: (
        Annotated[str, Meta(extra_json_schema={**_TIMESTAMP, "description": "When it was paid or cancelled."})] | None
    )
    transaction_id: Annotated[str, Meta(description="The transaction that paid it.")] | None
    cancel_reason: CancelReason | None
    revived: Annotated[
        bool,
        Meta(
            description="Paid by a success that arrived after the order had expired unpaid, its units still "
            "available and taken again."
        ),
    ]


class Product(Struct):
    id: ProductId
    name: str
    price_cents: Units
    stock: Annotated[int, Meta(ge=0, description="Units put on sale in total.")]
    available: Annotated[int, Meta(ge=0, description="Units that can be held now (live).")]
    max_per_customer: Annotated[int, Meta(ge=1, description="null: no limit.")] | None
    sale_starts_at: Timestamp | None
    sale_ends_at: Timestamp | None
    waiting_room: Annotated[bool, Meta(description="Holds need an admission from the waiting room.")]
    admit_per_second: Annotated[int, Meta(ge=1, description="null: no cap.")] | None
    admission_ttl_seconds: Annotated[int, Meta(ge=1, description="null: no waiting room.")] | None


class Ticket(Struct):
    """A waiting-room ticket (docs/waiting-room.md). Poll again after the Retry-After seconds."""

    ticket: TicketText
    product_id: ProductId
    number: Annotated[int, Meta(ge=1, description="Public: the draw lists numbers.")]
    state: TicketState
    position: (
        Annotated[
            int, Meta(ge=1, description="1-based among those still waiting; null unless waiting, and before the start.")
        ]
        | None
    )
    ahead: Annotated[int, Meta(ge=0)] | None
    estimated_wait_seconds: Annotated[int, Meta(ge=0)] | None
    joined_at: Timestamp
    sale_starts_at: Timestamp | None
    admission_token: (
        Annotated[
            str,
            Meta(
                pattern=_python(ADMISSION_PATTERN),
                description="While admitted: send it as X-Flashsale-Admission.",
            ),
        ]
        | None
    )
    admission_expires_at: Timestamp | None


class WaitingRoom(Struct):
    """A product's waiting room: the seed's SHA-256 at once, the seed after the start."""

    product_id: ProductId
    opened_at: Timestamp | None
    seed_sha256: Annotated[str, Meta(pattern=_python("^[0-9a-f]{64}$"))] | None
    seed: (
        Annotated[str, Meta(pattern=_python("^[0-9a-f]{64}$"), description="Revealed once the sale has started.")]
        | None
    )
    sale_starts_at: Timestamp | None
    pre_queue_tickets: Annotated[int, Meta(ge=0, description="Tickets 1 to this joined before the start.")]
    waiting: Units
    admitted: Annotated[int, Meta(ge=0, description="Admitted and not yet used or expired.")]
    admit_per_second: Annotated[int, Meta(ge=1)] | None
    admission_ttl_seconds: Annotated[int, Meta(ge=1)] | None


class WaitingRoomDraw(WaitingRoom):
    tickets: Annotated[
        list[int],
        Meta(description="The pre-queue's ticket numbers: docs/waiting-room.md recomputes their order from the seed."),
    ]


class WebhookResult(Struct, omit_defaults=True):
    order_id: OrderId
    transaction_id: str
    status: Annotated[OrderStatus, Meta(description="The order's status now.")]
    applied: Annotated[bool, Meta(description="Whether this payment changed the order.")]
    duplicate: Annotated[bool, Meta(description="This transaction id was seen before; nothing changed.")]
    refund_required: Annotated[
        bool,
        Meta(
            description="A success the order did not take (already cancelled, or already paid by another "
            "transaction): the customer must be refunded. `flashsale refunds` lists them."
        ),
    ]
    revived: Annotated[bool, Meta(description="This success revived an order that had expired unpaid.")]
    expires_at: (
        Annotated[
            str,
            Meta(
                extra_json_schema={
                    **_TIMESTAMP,
                    "description": "Only for `processing`: when the order lapses if still unpaid, its new expiry.",
                }
            ),
        ]
        | UnsetType
    ) = UNSET
    refund_status: (
        Annotated[RefundStatus, Meta(description="Only for `refunded`: the refund request's status now.")] | UnsetType
    ) = UNSET


class DemoPayment(Struct):
    order_id: OrderId
    transaction_id: str
    status: Annotated[PaymentResult, Meta(description="What the webhook reports.")]


class Live(Struct):
    status: Ok


class ReadyChecks(Struct):
    engine: Ok
    queue: Ok
    database: Ok


class Ready(Struct):
    status: Ok
    checks: ReadyChecks


class FieldFault(Struct):
    field: str
    message: str


class Problem(Struct, omit_defaults=True):
    """RFC 9457 problem details; `code` is stable, the other fields help a client act."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: (
        Annotated[
            list[FieldFault],
            Meta(description="validation_error: every field at fault (body field, path parameter or header)."),
        ]
        | UnsetType
    ) = UNSET
    available: Annotated[int, Meta(description="out_of_stock: units available now.")] | UnsetType = UNSET
    requested: int | UnsetType = UNSET
    limit: Annotated[int, Meta(description="limit_exceeded: units one customer may have.")] | UnsetType = UNSET
    used: Annotated[int, Meta(description="limit_exceeded: units this customer already has.")] | UnsetType = UNSET
    committed: Annotated[int, Meta(description="stock_below_committed: units held, pending or sold.")] | UnsetType = (
        UNSET
    )
    hold_id: str | UnsetType = UNSET
    order_id: str | UnsetType | None = UNSET
    transaction_id: Annotated[str, Meta(description="refund_not_found: the transaction named.")] | UnsetType = UNSET
    order_status: str | UnsetType = UNSET
    expired_at: Timestamp | UnsetType = UNSET
    sale_starts_at: Timestamp | UnsetType | None = UNSET
    sale_ends_at: Timestamp | UnsetType | None = UNSET
    checks: dict[str, Literal["ok", "down"]] | UnsetType = UNSET
    reason: (
        Annotated[
            Literal["missing", "invalid", "expired", "used"],
            Meta(description="admission_required: what is wrong with the admission."),
        ]
        | UnsetType
    ) = UNSET
    product_id: int | UnsetType = UNSET
    seed_sha256: str | UnsetType = UNSET


class WaitingRoomFigures(Struct):
    """A product's waiting room on the dashboard."""

    waiting: Units
    admitted: Annotated[int, Meta(ge=0, description="Admitted, not yet used.")]
    used: Units
    expired: Units
    left: Units
    admissions_per_second: Annotated[float, Meta(ge=0)]


class DashboardProduct(Struct):
    id: ProductId
    name: Annotated[str, Meta(description="null: the catalog does not know the product.")] | None
    total: Units
    available: int
    held: int
    pending: int
    sold: int
    outbox_backlog: Units
    counts: Annotated[
        dict[str, Units],
        Meta(
            description="The engine's running counts: holds, out_of_stock, limit, released, expired, "
            "orders, paid, payment_failed, cancelled, order_expired, duplicate, refund_required."
        ),
    ]
    queue: Annotated[WaitingRoomFigures, Meta(description="The product's waiting room; null: it has none.")] | None


class Difference(Struct):
    field: str
    engine: int | None
    durable: int | None


class ReconcileFinding(Struct):
    product_id: ProductId
    status: Literal["behind", "drifted"]
    remedy: Remedy | None
    backlog: Units
    differences: list[Difference]


class ReconcileVerdict(Struct):
    status: Literal["consistent", "behind", "drifted", "unknown"]
    checked_at: Timestamp | None
    detail: Annotated[str, Meta(description="unknown: why there is no verdict.")] | None
    findings: Annotated[
        list[ReconcileFinding],
        Meta(description="Each product that is not consistent, as `flashsale reconcile` reports it."),
    ]


class RatePoint(Struct):
    at: int
    holds: Annotated[float, Meta(ge=0)]
    orders: Annotated[float, Meta(ge=0)]


class Rates(Struct):
    interval_seconds: float
    window_seconds: float
    points: Annotated[
        list[RatePoint],
        Meta(description="Holds and orders per second, oldest first; `at` in epoch milliseconds."),
    ]


class Deliveries(Struct):
    """The merchant's events by delivery status; `failed` is dead-lettered."""

    pending: Units
    delivered: Units
    failed: Units


class MerchantFigures(Struct):
    """Read from the database with the reconcile verdict; null when it did not answer."""

    refunds_open: Annotated[int, Meta(ge=0, description="Refund requests not yet confirmed.")] | None
    deliveries: Deliveries | None


class DashboardStats(Struct):
    version: Annotated[int, Meta(ge=0, description="Grows when any figure changes.")]
    at: Timestamp
    products: list[DashboardProduct]
    outbox_backlog: Units
    rates: Rates
    reconcile: ReconcileVerdict
    merchant: MerchantFigures


class StreamProblem(Struct):
    """Why a `problem` event has no figures; the stream goes on and tries again a second later."""

    code: Literal["engine_unavailable"]
    detail: str


SCHEMAS: tuple[type[Struct], ...] = (
    Problem,
    Product,
    ProductSpec,
    HoldRequest,
    Hold,
    ActiveHold,
    OrderRequest,
    Order,
    WebhookRequest,
    WebhookResult,
    Live,
    Ready,
    DashboardProduct,
    ReconcileVerdict,
    DashboardStats,
    StreamProblem,
    DemoPaymentRequest,
    DemoPayment,
    DemoLoginRequest,
    DemoLogin,
    Ticket,
    WaitingRoom,
    WaitingRoomDraw,
)
"""Every body and answer the document describes, in its order (what they refer to follows them)."""
