"""The operator's live figures: ``GET /api/admin/stats`` (JSON) and ``GET /api/admin/stream`` (Server-Sent Events).

Both need the admin bearer token. The page cannot send a header with ``EventSource``, so it reads the
stream with ``fetch()``; each stream ends after ``STREAM_SECONDS`` and the page reconnects at once, so
an open dashboard never holds up a server's graceful shutdown for long.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from api.auth import require_admin
from api.bodies import StreamProblem
from api.feed import Feed
from api.services import of
from engine.exceptions import EngineUnavailable

STREAM_SECONDS = 5.0
"""uvicorn waits for open responses before it stops: a stream this short barely delays a shutdown."""
RETRY_MS = 1000
"""How long the page waits before it reconnects after an error (the SSE ``retry`` field)."""
UNAVAILABLE_PAUSE_SECONDS = 1.0

NO_STORE = {"Cache-Control": "no-store"}


def event(name: str, data: bytes, event_id: int | None = None) -> bytes:
    """One Server-Sent Event; ``data`` is compact JSON, so it is one line."""
    head = f"event: {name}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return head.encode() + b"data: " + data + b"\n\n"


def _feed(request: Request) -> Feed:
    feed: Feed = request.app.state.feed
    return feed


async def stats(request: Request) -> Response:
    require_admin(request, of(request).settings.admin_token)
    update = await _feed(request).next()
    return Response(update.body, media_type="application/json", headers=NO_STORE)


async def events(feed: Feed) -> AsyncIterator[bytes]:
    yield f"retry: {RETRY_MS}\n\n".encode()
    seen = -1
    deadline = time.monotonic() + STREAM_SECONDS
    while (left := deadline - time.monotonic()) > 0:
        try:
            update = await asyncio.wait_for(feed.next(seen), left)
        except TimeoutError:
            break
        except EngineUnavailable:
            problem = StreamProblem(code="engine_unavailable", detail="the stock engine's Redis did not answer")
            yield event("problem", msgspec.json.encode(problem))
            await asyncio.sleep(UNAVAILABLE_PAUSE_SECONDS)
            continue
        seen = update.version
        yield event("stats", update.body, update.version)
    yield event("reconnect", b"{}")


async def stream(request: Request) -> Response:
    require_admin(request, of(request).settings.admin_token)
    # X-Accel-Buffering: a proxy such as nginx would otherwise hold the events back.
    headers = {**NO_STORE, "X-Accel-Buffering": "no"}
    return StreamingResponse(events(_feed(request)), media_type="text/event-stream", headers=headers)


routes = [
    Route("/api/admin/stats", stats, methods=["GET"]),
    Route("/api/admin/stream", stream, methods=["GET"]),
]
