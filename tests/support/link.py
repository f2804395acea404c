"""A replication link that a test can hold and cut, like a network between a primary and its replica.

``Link`` is a TCP proxy in its own thread: the replica replicates through it (``--replicaof`` its port). While
held it still reads what both sides send but passes nothing on, as a congested or partitioned network does:
the replica falls behind while the primary goes on acknowledging writes. ``cut`` then drops everything kept
and every connection, and refuses new ones: what the primary sent meanwhile never reaches the replica. With
the primary killed at that moment, the replica is promoted without those writes (redis/redis#4819).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import Future


class Link:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="replication-link", daemon=True)
        self._flowing: asyncio.Event | None = None
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._cut = False

    def __enter__(self) -> Link:
        self._thread.start()
        self._call(self._start()).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, work: object) -> Future[None]:
        return asyncio.run_coroutine_threadsafe(work, self._loop)  # type: ignore[arg-type]

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def hold(self) -> None:
        """Pass nothing on (both ways) until ``release`` or ``cut``."""
        self._loop.call_soon_threadsafe(self._require_flowing().clear)

    def release(self) -> None:
        """Pass on everything kept, in order, and what comes next."""
        self._loop.call_soon_threadsafe(self._require_flowing().set)

    def cut(self) -> None:
        """Drop what was kept and every connection; refuse new ones."""
        self._call(self._cut_all()).result(10)

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self._call(self._cut_all()).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _require_flowing(self) -> asyncio.Event:
        assert self._flowing is not None, "the link is not started"
        return self._flowing

    async def _cut_all(self) -> None:
        self._cut = True
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.transport.abort()  # discards what is still buffered
        self._require_flowing().set()  # wake the pumps, which see the cut and stop

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers += [writer, up_writer]
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        flowing = self._require_flowing()
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                await flowing.wait()
                if self._cut:
                    return
                writer.write(data)
                await writer.drain()
        if not self._cut:
            writer.close()
