"""A Redis that can be stopped like a ``kill -STOP``-ed server, in the test's own event loop.

``StoppableRedis`` is a TCP proxy to a real Redis. While stopped it still accepts connections and reads
what clients send, but passes nothing on: no command runs and no answer comes, as with a server that
accepts connections and never answers. Continued, it passes on everything it kept, in order, even from
clients that have hung up meanwhile, as a continued server reads what its sockets buffered: a command a
caller gave up on may still run then.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit, urlunsplit


class StoppableRedis:
    def __init__(self, upstream_url: str) -> None:
        self.upstream = urlsplit(upstream_url)
        self._running = asyncio.Event()
        self._running.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> StoppableRedis:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._running.set()
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        """The upstream URL (its database number and all), pointing here."""
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return urlunsplit(self.upstream._replace(netloc=f"127.0.0.1:{port}"))

    def stop(self) -> None:
        self._running.clear()

    def cont(self) -> None:
        self._running.set()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self._writers.append(client_writer)
        await self._running.wait()
        host, port = self.upstream.hostname or "127.0.0.1", self.upstream.port or 6379
        upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
        self._writers.append(upstream_writer)
        for pump in (self._pump(client_reader, upstream_writer), self._pump(upstream_reader, client_writer)):
            task = asyncio.get_running_loop().create_task(pump)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                await self._running.wait()
                writer.write(data)
                await writer.drain()
        await self._running.wait()
        writer.close()
