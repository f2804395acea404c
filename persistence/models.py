"""The durable record: the catalog, orders and payments (SQLAlchemy 2, typed).

Order ids and hold ids are the engine's (``o<product>_<ULID>``, ``h<product>_<ULID>``); every
timestamp is UTC and comes from Redis server time, carried in the outbox events.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from engine.product_rules import MAX_NAME
from engine.types import CANCEL_REASONS, ORDER_STATUSES, PAYMENT_RESULTS

REFUND_STATUSES = ("requested", "sent", "confirmed")
REFUND_REASONS = ("already_paid", "expired", "payment_failed", "cancelled")
DELIVERY_STATUSES = ("pending", "delivered", "failed")

ID_LENGTH = 48
CUSTOMER_ID_LENGTH = 128
TRANSACTION_ID_LENGTH = 128


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both databases (SQLite stores them as naive UTC text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: expected a timezone-aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONPayload = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime(), int: sa.BigInteger()}


class ProductRow(Base):
    __tablename__ = "products"
    __table_args__ = (
        sa.CheckConstraint("price_cents >= 0", name="price_cents"),
        sa.CheckConstraint("stock >= 0", name="stock"),
        sa.CheckConstraint("max_per_customer >= 0", name="max_per_customer"),
        sa.CheckConstraint(
            "sale_ends_at IS NULL OR sale_starts_at IS NULL OR sale_ends_at > sale_starts_at", name="window"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(sa.String(MAX_NAME))
    price_cents: Mapped[int]
    stock: Mapped[int]
    """The total put on sale."""
    max_per_customer: Mapped[int] = mapped_column(server_default="0")
    """Units one customer may hold, have pending or have bought; 0 means no limit."""
    sale_starts_at: Mapped[datetime | None]
    sale_ends_at: Mapped[datetime | None]
    waiting_room: Mapped[bool] = mapped_column(server_default=sa.false())
    """Holds need an admission from the product's waiting room (docs/waiting-room.md)."""
    admit_per_second: Mapped[int | None]
    """The waiting room's admissions a second at most; null: no cap."""
    admission_ttl_seconds: Mapped[int] = mapped_column(server_default="60")
    version: Mapped[int] = mapped_column(server_default="1")
    """1 when created, one more at every change."""
    low_stock_threshold: Mapped[int] = mapped_column(server_default="0")
    """Below it (and above 0) the merchant hears ``product.low_stock``; 0: never."""
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class OrderRow(Base):
    __tablename__ = "orders"
    __table_args__ = (
        sa.CheckConstraint(_in("status", ORDER_STATUSES), name="status"),
        sa.CheckConstraint(f"cancel_reason IS NULL OR {_in('cancel_reason', CANCEL_REASONS)}", name="cancel_reason"),
        sa.CheckConstraint("quantity > 0", name="quantity"),
        sa.CheckConstraint("amount_cents >= 0", name="amount_cents"),
        sa.Index(None, "product_id", "status"),
        sa.Index(None, "customer_id"),
    )

    id: Mapped[str] = mapped_column(sa.String(ID_LENGTH), primary_key=True)
    product_id: Mapped[int] = mapped_column(sa.ForeignKey("products.id"))
    hold_id: Mapped[str] = mapped_column(sa.String(ID_LENGTH), unique=True)
    customer_id: Mapped[str | None] = mapped_column(sa.String(CUSTOMER_ID_LENGTH))
    quantity: Mapped[int] = mapped_column(sa.Integer)
    amount_cents: Mapped[int]
    status: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    """When an unpaid order lapses (the engine cancels it as ``expired``)."""
    paid_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    cancel_reason: Mapped[str | None] = mapped_column(sa.String(32))
    transaction_id: Mapped[str | None] = mapped_column(sa.String(TRANSACTION_ID_LENGTH))
    """The transaction that paid the order."""
    revived: Mapped[bool] = mapped_column(server_default=sa.false())
    """Paid by a success that arrived after the order had expired unpaid, its units taken again (the one
    move out of ``cancelled``)."""
    processing_transaction_id: Mapped[str | None] = mapped_column(sa.String(TRANSACTION_ID_LENGTH), index=True)
    """The transaction whose ``processing`` webhook used the order's one payment grace (kept once the order
    closes); a rebuild gives it back to the engine, which then extends the order no more, and a webhook whose
    transaction id Redis forgot finds the id bound to this order here."""


class PaymentRow(Base):
    __tablename__ = "payments"
    __table_args__ = (sa.CheckConstraint(_in("status", PAYMENT_RESULTS), name="status"),)

    transaction_id: Mapped[str] = mapped_column(sa.String(TRANSACTION_ID_LENGTH), primary_key=True)
    order_id: Mapped[str] = mapped_column(sa.String(ID_LENGTH), sa.ForeignKey("orders.id"), index=True)
    status: Mapped[str] = mapped_column(sa.String(16))
    applied: Mapped[bool]
    """Whether this payment changed the order (a failure, or a success after expiry, may not)."""
    received_at: Mapped[datetime]
    payload: Mapped[Any] = mapped_column(JSONPayload, nullable=True)
    """The webhook body as received, parsed; a body that is not JSON is kept as a JSON string."""
    refund_required: Mapped[bool] = mapped_column(server_default=sa.false())
    """A success the order did not take (already cancelled, or already paid by another transaction): the
    customer was charged for nothing. ``flashsale refunds`` lists them."""


class PaymentConflictRow(Base):
    """A payment event whose transaction id the ``payments`` table already holds for another order.

    The engine refuses a reused transaction id (claim_transaction, then PostgreSQL), so one reaches the drain
    only when both checks were blind (PostgreSQL was down while Redis had forgotten the id). It is kept here,
    never dropped, and ``flashsale reconcile`` reports its product as drifted until an operator resolves it.
    """

    __tablename__ = "payment_conflicts"
    __table_args__ = (
        sa.CheckConstraint(_in("status", PAYMENT_RESULTS), name="status"),
        sa.Index(None, "product_id", "resolved_at"),
    )

    transaction_id: Mapped[str] = mapped_column(sa.String(TRANSACTION_ID_LENGTH), primary_key=True)
    order_id: Mapped[str] = mapped_column(sa.String(ID_LENGTH), sa.ForeignKey("orders.id"), primary_key=True)
    """The order this event names: the second one to use the transaction id."""
    recorded_order_id: Mapped[str] = mapped_column(sa.String(ID_LENGTH))
    """The order ``payments`` holds the transaction id for."""
    product_id: Mapped[int]
    """The product of ``order_id``."""
    status: Mapped[str] = mapped_column(sa.String(16))
    applied: Mapped[bool]
    """Whether the engine applied it to ``order_id`` (the order was paid or cancelled by it)."""
    received_at: Mapped[datetime]
    detected_at: Mapped[datetime]
    payload: Mapped[Any] = mapped_column(JSONPayload, nullable=True)
    resolved_at: Mapped[datetime | None]
    """Set by ``flashsale reconcile --resolve-conflict`` once an operator has dealt with it."""


class RefundRequestRow(Base):
    """A charge no order took, to give back: ``requested`` (recorded by the drain with the payment), ``sent``
    (the operator asked the provider), ``confirmed`` (the provider's ``refunded`` webhook)."""

    __tablename__ = "refund_requests"
    __table_args__ = (
        sa.CheckConstraint(_in("status", REFUND_STATUSES), name="status"),
        sa.CheckConstraint(_in("reason", REFUND_REASONS), name="reason"),
        sa.Index(None, "status", "requested_at"),
    )

    transaction_id: Mapped[str] = mapped_column(
        sa.String(TRANSACTION_ID_LENGTH), sa.ForeignKey("payments.transaction_id"), primary_key=True
    )
    """The charge to refund (one refund per charge)."""
    order_id: Mapped[str] = mapped_column(sa.String(ID_LENGTH), sa.ForeignKey("orders.id"), index=True)
    product_id: Mapped[int]
    customer_id: Mapped[str | None] = mapped_column(sa.String(CUSTOMER_ID_LENGTH))
    amount_cents: Mapped[int]
    reason: Mapped[str] = mapped_column(sa.String(32))
    paid_by: Mapped[str | None] = mapped_column(sa.String(TRANSACTION_ID_LENGTH))
    """For ``already_paid``: the transaction that did pay the order."""
    status: Mapped[str] = mapped_column(sa.String(16))
    requested_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    confirmed_at: Mapped[datetime | None]
    confirmation: Mapped[Any] = mapped_column(JSONPayload, nullable=True)
    """The ``refunded`` webhook's body, as received."""


SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""An auto-incrementing key on both databases (SQLite numbers only an INTEGER PRIMARY KEY)."""


class MerchantEventRow(Base):
    """The merchant-event outbox: written by the drain in the transaction of the rows it describes, delivered
    by ``workers/deliveries.py`` at least once, in ``seq`` order within a ``stream`` (an order, a product)."""

    __tablename__ = "merchant_events"
    __table_args__ = (
        sa.CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),
        sa.Index(None, "status", "next_attempt_at"),
        sa.Index(None, "stream", "seq"),
    )

    seq: Mapped[int] = mapped_column(SERIAL, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(sa.String(40), unique=True)
    """The event's id, as the merchant sees it (``evt_<ULID>``): a receiver dedups on it."""
    type: Mapped[str] = mapped_column(sa.String(32))
    stream: Mapped[str] = mapped_column(sa.String(64))
    """What the event is about, in whose order events are delivered: ``order:<id>`` or ``product:<id>``."""
    dedup_key: Mapped[str] = mapped_column(sa.String(200), unique=True)
    """One event per transition, so a drain that replays its batch makes none twice."""
    body: Mapped[str] = mapped_column(sa.Text)
    """The JSON sent, byte for byte (it is signed as sent)."""
    created_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(sa.String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    next_attempt_at: Mapped[datetime]
    deadline_at: Mapped[datetime]
    """Past it, an event not yet delivered is dead-lettered (``failed``)."""
    leased_until: Mapped[datetime | None]
    """A delivery in flight: nobody else sends it before then (a worker killed mid-delivery lets it lapse)."""
    delivered_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(sa.String(500))


products = cast(sa.Table, ProductRow.__table__)
orders = cast(sa.Table, OrderRow.__table__)
payments = cast(sa.Table, PaymentRow.__table__)
payment_conflicts = cast(sa.Table, PaymentConflictRow.__table__)
refund_requests = cast(sa.Table, RefundRequestRow.__table__)
merchant_events = cast(sa.Table, MerchantEventRow.__table__)
