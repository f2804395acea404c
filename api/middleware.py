"""The one middleware: times every request for the metrics, gives its engine work one deadline from its arrival,
and turns a bug into a logged 500 problem."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import internal_error
from api.metrics import REQUEST_SECONDS, REQUESTS
from engine.aio import DEADLINE

UNMATCHED = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Observe:
    def __init__(self, app: ASGIApp, engine_deadline: float | None = None) -> None:
        self.app = app
        self.engine_deadline = engine_deadline
        """Seconds from a request's arrival by which its engine calls must end (FLASHSALE_REDIS_TIMEOUT_SECONDS)."""
        # Label children cached: the registry's own lookup takes a lock and builds a tuple every call.
        self._timers: dict[tuple[str, str], Any] = {}
        self._counters: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        if self.engine_deadline is not None:
            token = DEADLINE.set(asyncio.get_running_loop().time() + self.engine_deadline)

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        except Exception as error:
            if status:
                raise  # the answer has begun; only the server can still end the connection
            status = 500
            await internal_error(error)(scope, receive, send)
        finally:
            if self.engine_deadline is not None:
                DEADLINE.reset(token)
            route = getattr(scope.get("route"), "path", UNMATCHED)
            method = scope["method"] if scope["method"] in METHODS else "OTHER"  # labels stay a bounded set
            self._observe(route, method, status, time.perf_counter() - started)

    def _observe(self, route: str, method: str, status: int, seconds: float) -> None:
        timer = self._timers.get((route, method))
        if timer is None:
            timer = self._timers[(route, method)] = REQUEST_SECONDS.labels(route, method)
        timer.observe(seconds)
        counter = self._counters.get((route, method, status))
        if counter is None:
            counter = self._counters[(route, method, status)] = REQUESTS.labels(route, method, str(status))
        counter.inc()
