"""JSON answers, rendered by msgspec from their declarations in ``api.bodies``: one renderer for each answer."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response

from api import bodies
from api.times import iso
from engine.types import Hold, Order, Snapshot

_encoder = msgspec.json.Encoder()


def json(body: Any, status: int = 200) -> Response:
    """``body`` (a Struct of ``api.bodies``, or a list of them) as an ``application/json`` answer."""
    return Response(_encoder.encode(body), status_code=status, media_type="application/json")


def hold_body(hold: Hold) -> bodies.Hold:
    return bodies.Hold(
        hold_id=hold.hold_id,
        product_id=hold.product_id,
        quantity=hold.quantity,
        customer_id=hold.customer_id,
        expires_at=iso(hold.expires_at_ms),
    )


def active_hold_body(hold: Hold) -> bodies.ActiveHold:
    return bodies.ActiveHold(
        hold_id=hold.hold_id,
        product_id=hold.product_id,
        quantity=hold.quantity,
        customer_id=hold.customer_id,
        expires_at=iso(hold.expires_at_ms),
        status="active",
    )


def order_body(order: Order) -> bodies.Order:
    return bodies.Order(
        order_id=order.order_id,
        hold_id=order.hold_id,
        product_id=order.product_id,
        customer_id=order.customer_id,
        quantity=order.quantity,
        amount_cents=order.amount_cents,
        status=order.status,
        created_at=iso(order.created_at_ms),
        expires_at=iso(order.expires_at_ms),
        closed_at=iso(order.closed_at_ms) if order.closed_at_ms else None,
        transaction_id=order.transaction_id,
        cancel_reason=order.cancel_reason,
        revived=order.revived,
    )


def product_body(name: str, snapshot: Snapshot) -> bodies.Product:
    """The catalog's name with the engine's live numbers: stock, availability, price and sale window."""
    return bodies.Product(
        id=snapshot.product_id,
        name=name,
        price_cents=snapshot.price_cents,
        stock=snapshot.total,
        available=snapshot.available,
        max_per_customer=snapshot.max_per_customer or None,
        sale_starts_at=iso(snapshot.starts_at_ms) if snapshot.starts_at_ms else None,
        sale_ends_at=iso(snapshot.ends_at_ms) if snapshot.ends_at_ms else None,
    )
