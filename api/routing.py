"""A lean route for the hot path: its endpoint runs without Starlette's per-route exception wrapper.

Starlette wraps every function endpoint in a second exception handler, which also wraps each ``send``.
The application's ``ExceptionMiddleware`` holds the same handlers, so errors get the same answers there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]


class _Unwrapped:
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.endpoint(Request(scope, receive, send))
        await response(scope, receive, send)


def lean_route(path: str, endpoint: Endpoint, *, methods: list[str]) -> Route:
    return Route(path, _Unwrapped(endpoint), methods=methods, name=endpoint.__name__)
