"""JSON answers, rendered by msgspec from their declarations in ``api.bodies``: one renderer for each answer."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response

from api import bodies
from api.times import iso
from engine.types import Hold, Order, Snapshot, Ticket, WaitingRoom
from persistence.order_json import order_object

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
    """The merchant events render an order with the same ``order_object``."""
    return bodies.Order(**order_object(order))


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
        waiting_room=snapshot.waiting_room,
        admit_per_second=snapshot.admit_per_second,
        admission_ttl_seconds=snapshot.admission_ttl_ms // 1000 if snapshot.admission_ttl_ms else None,
    )


def ticket_body(ticket: Ticket, estimated_wait_seconds: int | None) -> bodies.Ticket:
    return bodies.Ticket(
        ticket=ticket.ticket,
        product_id=ticket.product_id,
        number=ticket.number,
        state=ticket.state,
        position=ticket.position,
        ahead=ticket.position - 1 if ticket.position is not None else None,
        estimated_wait_seconds=estimated_wait_seconds,
        joined_at=iso(ticket.joined_at_ms),
        sale_starts_at=iso(ticket.sale_starts_at_ms) if ticket.sale_starts_at_ms else None,
        admission_token=ticket.admission_token,
        admission_expires_at=iso(ticket.admission_expires_at_ms) if ticket.admission_expires_at_ms else None,
    )


def _room_fields(room: WaitingRoom) -> dict[str, Any]:
    return {
        "product_id": room.product_id,
        "opened_at": iso(room.opened_at_ms) if room.opened_at_ms else None,
        "seed_sha256": room.seed_sha256,
        "seed": room.seed,
        "sale_starts_at": iso(room.sale_starts_at_ms) if room.sale_starts_at_ms else None,
        "pre_queue_tickets": room.pre_queue_last,
        "waiting": room.waiting,
        "admitted": room.admitted,
        "admit_per_second": room.admit_per_second,
        "admission_ttl_seconds": room.admission_ttl_ms // 1000 if room.admission_ttl_ms else None,
    }


def waiting_room_body(room: WaitingRoom) -> bodies.WaitingRoom:
    """A product's waiting room as the public sees it: the seed's SHA-256 at once, the seed after the start."""
    return bodies.WaitingRoom(**_room_fields(room))


def draw_body(room: WaitingRoom) -> bodies.WaitingRoomDraw:
    """The room with its pre-queue's ticket numbers, 1 to the last that joined before the start."""
    return bodies.WaitingRoomDraw(**_room_fields(room), tickets=list(range(1, room.pre_queue_last + 1)))
