"""uvicorn's httptools protocol, sending a response's head and body in one write instead of two.

A write is a system call; sending the status line and headers on their own doubled them per request,
and they were a fifth of the server's time under load (BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _HeadHeld:
    """One response's view of the connection: its first write (the head) waits for the next one.

    A head with no body right behind it (a stream that waits for its first event) goes out by itself
    after the current turn of the event loop, so it is never held for longer than that.
    """

    __slots__ = ("first", "head", "transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.head: bytes | None = None
        self.first = True

    def write(self, data: bytes) -> None:
        if self.first:
            self.first = False
            self.head = data
            asyncio.get_running_loop().call_soon(self.flush)
            return
        if self.head is not None:
            data, self.head = self.head + data, None
        self.transport.write(data)

    def flush(self) -> None:
        if self.head is not None:
            head, self.head = self.head, None
            if not self.transport.is_closing():
                self.transport.write(head)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        """Any other use of the transport (a uvicorn release may make one) sends the held head first."""
        self.flush()
        return getattr(self.transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def on_headers_complete(self) -> None:
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is not previous:  # a new request (not an upgrade): its task has not run yet
            self.cycle.transport = cast(asyncio.Transport, _HeadHeld(self.transport))
