"""Orders: a hold turned into a purchase awaiting payment. Served from the engine while hot, else PostgreSQL."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api import threadpool
from api.bodies import IdempotencyKey, OrderRequest
from api.buyer_auth import owner
from api.errors import OrderStateUnknown
from api.responses import json, order_body
from api.routes.holds import expired
from api.services import of
from api.validation import decode, header, path_id, read_json
from engine import exceptions as engine_errors
from engine.ids import format_id, parse_id
from engine.log_fields import order_log_fields
from engine.types import Order
from persistence.order_reads import get_order
from shared import logs

log = logs.get_logger("api.orders")


CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def idempotent_order_id(hold_id: str, key: str) -> str:
    """The order id for converting ``hold_id`` under ``key``: the same every time, so a retry replays.

    It keeps the hold's ULID time (10 characters: ids still sort by creation) and takes the 80 random
    bits (16 characters) from a hash of the hold and the key.
    """
    hold = parse_id(hold_id, "hold")
    bits = int.from_bytes(hashlib.sha256(f"{hold_id}\n{key}".encode()).digest()[:10], "big")
    random = "".join(CROCKFORD[(bits >> shift) & 31] for shift in range(75, -1, -5))
    return format_id("order", hold.product_id, hold.ulid[:10] + random)


# Another buyer's hold or order answers 404 as if it did not exist: the scripts check the owner in the same atomic
# call as the change (engine/lua/_prelude.lua), and _durable the record PostgreSQL keeps.
async def _durable(db: sa.Engine, order_id: str, who: str | None) -> Order:
    order = await threadpool.call(get_order, db, order_id)
    if order is None or (who is not None and order.customer_id != who):
        raise engine_errors.OrderNotFound(order_id)
    return order


async def create_order(request: Request) -> Response:
    services = of(request)
    who = owner(await services.buyer_auth.authenticate(request))
    key = header(request, b"idempotency-key")
    body = decode(await read_json(request), OrderRequest, headers=(("Idempotency-Key", key, IdempotencyKey),))
    hold_id = body.hold_id
    order_id = idempotent_order_id(hold_id, key) if key is not None else None
    try:
        order = await services.engine.convert(hold_id, order_id=order_id, owner=who)
    except engine_errors.HoldExpired as error:
        raise expired(error) from None
    log.info(logs.ORDER_CREATED, **order_log_fields(order), hold_id=order.hold_id)
    services.drain_requests.send()
    return json(order_body(order), 201)


async def read_order(request: Request) -> Response:
    services = of(request)
    who = owner(await services.buyer_auth.authenticate(request))
    order_id = path_id(request, "order_id", "order")
    try:
        order = await services.engine.order(order_id, owner=who)
    except engine_errors.OrderNotFound:
        order = await _durable(services.db, order_id, who)
    return json(order_body(order))


async def cancel_order(request: Request) -> Response:
    services = of(request)
    who = owner(await services.buyer_auth.authenticate(request))
    order_id = path_id(request, "order_id", "order")
    try:
        cancellation = await services.engine.cancel(order_id, owner=who)
    except engine_errors.OrderNotFound:
        return json(order_body(_closed(await _durable(services.db, order_id, who))))
    order = cancellation.order
    if cancellation.changed:
        log.info(logs.ORDER_CANCELLED, **order_log_fields(order), reason=order.cancel_reason)
        services.drain_requests.send()
    return json(order_body(order))


def _closed(order: Order) -> Order:
    """Cancelling an order the engine has forgotten: answer from the durable record if it is closed."""
    if order.status == "paid":
        raise engine_errors.OrderNotPending(order.order_id, "paid")
    if order.status == "pending":
        # Pending in PostgreSQL yet unknown to the engine: Redis lost it; `flashsale reconcile` restores it.
        raise OrderStateUnknown(order.order_id)
    return order


routes = [
    Route("/api/orders", create_order, methods=["POST"]),
    Route("/api/orders/{order_id}", read_order, methods=["GET"]),
    Route("/api/orders/{order_id}/cancel", cancel_order, methods=["POST"]),
]
