"""Holds: a buyer's claim on units for a few minutes. The hot path of a sale: keep it lean."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.bodies import AdmissionToken, HoldRequest, IdempotencyKey
from api.buyer_auth import customer, owner
from api.errors import ApiError, ValidationFailed
from api.responses import active_hold_body, hold_body, json
from api.routing import lean_route
from api.services import of
from api.validation import decode, header, path_id, read_json
from engine import AsyncEngine
from engine import exceptions as engine_errors
from engine.tickets import parse_ticket
from engine.types import Hold
from shared import logs

log = logs.get_logger("api.holds")


def expired(error: engine_errors.HoldExpired) -> engine_errors.HoldExpired:
    log.info(logs.HOLD_EXPIRED, hold_id=error.hold_id, expired_at_ms=error.expired_at_ms)
    return error


def admission_product(admission: str) -> int:
    """The product of an ``X-Flashsale-Admission`` token; a 422 naming the header if it is no admission token."""
    try:
        return parse_ticket(admission, "admission").product_id
    except engine_errors.InvalidId:
        example = "must be an admission token such as a42_17_3f0c9d1e5a7b2c44"
        raise ValidationFailed([{"field": "X-Flashsale-Admission", "message": example}]) from None


def raise_unless_active(hold: Hold) -> None:
    if hold.status == "expired":
        raise expired(engine_errors.HoldExpired(hold.hold_id, hold.expires_at_ms))
    if hold.status == "converted":
        raise engine_errors.HoldAlreadyUsed(hold.hold_id, hold.order_id)
    if hold.status == "released":
        raise engine_errors.HoldReleased(hold.hold_id)


async def create_hold(request: Request) -> Response:
    services = of(request)
    buyer = await services.limited_buyer(request)
    key = header(request, b"idempotency-key")
    admission = header(request, b"x-flashsale-admission")
    headers = (("Idempotency-Key", key, IdempotencyKey), ("X-Flashsale-Admission", admission, AdmissionToken))
    body = decode(await read_json(request), HoldRequest, headers=headers)
    product_id, quantity, claimed = body.product_id, body.quantity, body.customer_id
    # With buyer tokens the verified buyer is the customer: the limit and the key's scope follow the token.
    customer_id = customer(buyer, claimed)
    if admission is not None and admission_product(admission) != product_id:
        raise engine_errors.AdmissionRequired(product_id, "invalid")
    try:
        hold = await services.engine.reserve(
            product_id, quantity, customer_id=customer_id, idempotency_key=key, admission=admission
        )
    except engine_errors.OutOfStock as error:
        log.info(logs.OUT_OF_STOCK, product_id=product_id, requested=quantity, available=error.available)
        raise
    except engine_errors.AdmissionRequired as error:
        log.info(logs.ADMISSION_REFUSED, product_id=product_id, reason=error.reason)
        raise
    # The engine replays a key only for the caller who used it (the same customer_id, or none for both),
    # so the hold named here is this caller's own: another caller's key finds nothing and makes a new hold.
    if key is not None and (hold.quantity, hold.customer_id) != (quantity, customer_id):
        raise ApiError(
            409,
            "idempotency_key_reused",
            "you first used this Idempotency-Key with a different quantity",
            hold_id=hold.hold_id,
        )
    return json(hold_body(hold), 201)


async def get_hold(engine: AsyncEngine, hold_id: str, who: str | None) -> Response:
    hold = await engine.hold(hold_id, owner=who)
    raise_unless_active(hold)
    return json(active_hold_body(hold))


async def release_hold(engine: AsyncEngine, hold_id: str, who: str | None) -> Response:
    try:
        hold = await engine.release(hold_id, owner=who)
    except engine_errors.HoldExpired as error:
        raise expired(error) from None
    log.info(logs.HOLD_RELEASED, hold_id=hold.hold_id, product_id=hold.product_id, quantity=hold.quantity)
    return Response(status_code=204)


async def hold_resource(request: Request) -> Response:
    services = of(request)
    # Another buyer's hold answers 404 hold_not_found, checked by the script itself (engine/lua/_prelude.lua).
    who = owner(await services.buyer_auth.authenticate(request))
    hold_id = path_id(request, "hold_id", "hold")
    if request.method == "DELETE":
        return await release_hold(services.engine, hold_id, who)
    return await get_hold(services.engine, hold_id, who)


routes = [
    lean_route("/api/holds", create_hold, methods=["POST"]),
    # One route for both methods, so a third method gets a 405 whose Allow header names both.
    Route("/api/holds/{hold_id}", hold_resource, methods=["GET", "DELETE"]),
]
