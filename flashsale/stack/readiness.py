"""Free ports, and waiting until a server the operator's tools started answers (Redis, or the API over HTTP)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from typing import Any, Literal

import httpx
import redis

Outcome = Literal["ready", "exited", "timed_out"]


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the OS's pick): a server started next may take it."""
    with socket.socket(_family(host)) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_free(host: str, port: int) -> bool:
    with socket.socket(_family(host)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def redis_answers(client: Any) -> bool:
    """Redis answers PING; not while it is still loading its data (BusyLoadingError is a ConnectionError)."""
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def http_answers(url: str) -> bool:
    """``url`` answers 200."""
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(
    ready: Callable[[], bool], *, within: float, poll: float, exited: Callable[[], bool] = lambda: False
) -> Outcome:
    """Poll ``ready`` until it is true, the server's process has ``exited``, or ``within`` seconds have passed."""
    deadline = time.monotonic() + within
    while True:
        if exited():
            return "exited"
        if ready():
            return "ready"
        if time.monotonic() > deadline:
            return "timed_out"
        time.sleep(poll)


async def http_ready(url: str, *, within: float, poll: float = 0.2) -> bool:
    """Whether ``url`` answered 200 within ``within`` seconds, asked every ``poll`` seconds."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return True
            await asyncio.sleep(poll)
    return False
