"""Operations: liveness, readiness naming what is down, Prometheus metrics, and the OpenAPI document."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from functools import cache

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api import metrics, openapi, threadpool
from api.bodies import Live, Ready, ReadyChecks
from api.errors import problem
from api.responses import json
from api.services import of
from persistence.db import ping

CHECK_TIMEOUT_SECONDS = 2.0


async def _up(probe: Awaitable[object], seconds: float = CHECK_TIMEOUT_SECONDS) -> bool:
    try:
        async with asyncio.timeout(seconds):
            await probe
    except Exception:  # any failure to answer is "down"; what it was matters to the logs, not here
        return False
    return True


async def livez(request: Request) -> Response:
    return json(Live(status="ok"))


async def readyz(request: Request) -> Response:
    services = of(request)
    engine, queue, db = await asyncio.gather(
        _up(services.engine.redis.ping(), services.settings.redis_timeout_seconds),
        _up(services.queue.ping()),
        _up(threadpool.call(ping, services.db)),
    )
    checks = {name: "ok" if up else "down" for name, up in (("engine", engine), ("queue", queue), ("database", db))}
    down = [name for name, state in checks.items() if state == "down"]
    if down:
        return problem(503, "not_ready", f"down: {', '.join(down)}", headers={"Retry-After": "1"}, checks=checks)
    return json(Ready(status="ok", checks=ReadyChecks(engine="ok", queue="ok", database="ok")))


async def metrics_text(request: Request) -> Response:
    return Response(await metrics.render(of(request).engine, of(request).db), media_type=metrics.CONTENT_TYPE)


@cache
def _document() -> bytes:
    return orjson.dumps(openapi.document())


async def openapi_json(request: Request) -> Response:
    return Response(_document(), media_type="application/json")


routes = [
    Route("/livez", livez, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics_text, methods=["GET"]),
    Route("/openapi.json", openapi_json, methods=["GET"]),
]
