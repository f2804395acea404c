"""The waiting room: join, poll, leave; the room's public record, and its draw once the sale has started."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.errors import ApiError
from api.queue_hints import estimated_wait_seconds, poll_after_seconds
from api.responses import draw_body, json, ticket_body, waiting_room_body
from api.services import of
from api.times import iso
from api.validation import Fields, path_product_id
from engine.exceptions import InvalidId, WaitingRoomOff
from engine.tickets import parse_ticket
from engine.types import Ticket, WaitingRoom
from shared import logs

log = logs.get_logger("api.queue")


class DrawNotRevealed(ApiError):
    def __init__(self, room: WaitingRoom) -> None:
        super().__init__(
            409,
            "draw_not_revealed",
            "the pre-queue is drawn when the sale starts; its seed and tickets are published then",
            headers={"Retry-After": str(max(1, ((room.sale_starts_at_ms or 0) - room.now_ms) // 1000))},
            sale_starts_at=iso(room.sale_starts_at_ms) if room.sale_starts_at_ms else None,
            seed_sha256=room.seed_sha256,
        )


def path_ticket(request: Request) -> str:
    """A ticket from the path, or a 422 naming it."""
    value = request.path_params["ticket"]
    try:
        parse_ticket(value)
    except InvalidId:
        fields = Fields()
        fields.fault("ticket", "must be a ticket such as q42_17_3f0c9d1e5a7b2c44")
        fields.check()
    return str(value)


def _ticket_answer(ticket: Ticket, status: int = 200) -> Response:
    response = json(ticket_body(ticket, estimated_wait_seconds(ticket)), status)
    after = poll_after_seconds(ticket)
    if after is not None:
        response.headers["Retry-After"] = str(after)
    return response


async def join(request: Request) -> Response:
    services = of(request)
    buyer = await services.limited_buyer(request)
    product_id = path_product_id(request)
    # With buyer tokens the ticket is the verified buyer's: a second join finds it again (200).
    ticket = await services.engine.queue_join(product_id, buyer.sub if buyer is not None else None)
    return _ticket_answer(ticket, 201 if ticket.created else 200)


async def room(request: Request) -> Response:
    product_id = path_product_id(request)
    info = await of(request).engine.queue_info(product_id)
    if not info.on:
        raise WaitingRoomOff(product_id)
    return json(waiting_room_body(info))


async def product_queue(request: Request) -> Response:
    if request.method == "POST":
        return await join(request)
    return await room(request)


async def draw(request: Request) -> Response:
    product_id = path_product_id(request)
    info = await of(request).engine.queue_info(product_id)
    if not info.on:
        raise WaitingRoomOff(product_id)
    if info.seed is None:
        raise DrawNotRevealed(info)
    return json(draw_body(info))


async def ticket_resource(request: Request) -> Response:
    services = of(request)
    buyer = await services.buyer_auth.authenticate(request)
    owner = buyer.sub if buyer is not None else None
    ticket = path_ticket(request)
    engine = services.engine
    if request.method == "DELETE":
        state = await engine.queue_leave(ticket, owner)
        parsed = parse_ticket(ticket)
        log.info(logs.QUEUE_LEFT, product_id=parsed.product_id, ticket_number=parsed.number, state=state)
        return Response(status_code=204)
    return _ticket_answer(await engine.queue_poll(ticket, owner))


routes = [
    # One route for both methods, so a third method gets a 405 whose Allow header names both.
    Route("/api/products/{id}/queue", product_queue, methods=["GET", "POST"]),
    Route("/api/products/{id}/queue/draw", draw, methods=["GET"]),
    Route("/api/queue/{ticket}", ticket_resource, methods=["GET", "DELETE"]),
]
