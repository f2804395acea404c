"""Round-trip sharing: concurrent script calls on different products go to Redis in one pipeline.

Coalescing (engine.coalesce) merges the reserves of one product into one script call. Calls on
different products cannot merge that way (a script touches one product), but they can share a
round trip: while one call or pipeline is in flight, new calls queue, and when it returns the queue
goes as one pipeline. A lone call goes at once, alone, so this costs no latency when idle. Under a
burst spread over many products, it turns N round trips, and N times the client's per-call cost,
into one.

Each call in a pipeline is its own atomic script run; only the trip is shared. With an acknowledger
(engine.replication), a trip that holds a write ends with one marker write and one WAIT, for all of its
calls. A reply that is an error fails only its own call, and so does an argument that cannot be encoded:
a queued call is packed when it joins the queue, by its own caller. A connection failure, or a trip that
outlives ``timeout``, fails every call of the trip, as it would have failed each alone. A caller that gave
up (cancelled, or past its deadline) before its trip left is not sent.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from engine.replication import AsyncAcknowledger
from engine.waiters import answer

MAX_CALLS = 64
"""Script calls in one pipeline at most."""

Pending = tuple[Any, Sequence[Any], Sequence[Any], "asyncio.Future[Any]", bool]
"""A queued call: its script, keys, args, its caller's future, and whether it waits for the replicas."""


class Pipeliner:
    """Runs redis-py ``AsyncScript`` calls of one asyncio client, sharing round trips under load."""

    def __init__(
        self,
        redis: Any,
        *,
        max_calls: int = MAX_CALLS,
        timeout: float | None = None,
        acker: AsyncAcknowledger | None = None,
        max_trips: int = 1,
    ) -> None:
        self._redis = redis
        self._acker = acker
        self._encode = redis.get_encoder().encode
        self.max_calls = max_calls
        self.timeout = timeout
        """How long a trip may take before every call still in it fails with TimeoutError."""
        self.max_trips = max_trips
        """Trips in flight at once: more than one lets a trip's WAIT overlap the next trip's scripts."""
        self._queue: list[Pending] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(self, script: Any, keys: Sequence[Any], args: Sequence[Any], *, acked: bool = False) -> Any:
        """The script's reply; ``acked``: a write, answered once the acknowledger's WAIT confirms its trip."""
        acked = acked and self._acker is not None
        if self._in_flight >= self.max_trips:
            # Packed here, where an error reaches this caller alone, not later with the whole trip.
            packed_keys, packed_args = [self._encode(k) for k in keys], [self._encode(a) for a in args]
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._queue.append((script, packed_keys, packed_args, future, acked))
            return await future
        self._in_flight += 1
        try:
            if acked:
                assert self._acker is not None
                return await self._acker.script(script, keys, args)
            return await script(keys=keys, args=args)
        finally:
            self._release()

    def _release(self) -> None:
        """A lone call's trip is back: hand its slot and the queue to a sender task, or free the slot."""
        if not self._queue:
            self._in_flight -= 1
            return
        # The sender serves every queued caller and belongs to none: not the context (a request's deadline)
        # of the caller whose call happened to be in flight.
        task = asyncio.get_running_loop().create_task(self._drain(), context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        try:
            while self._queue:
                trip = [pending for pending in self._queue[: self.max_calls] if not pending[3].done()]
                del self._queue[: self.max_calls]
                if trip:
                    await self._send(trip)
        finally:
            self._in_flight -= 1

    async def _send(self, trip: list[Pending]) -> None:
        await answer([pending[3] for pending in trip], self._replies(trip))

    async def _replies(self, trip: list[Pending]) -> list[Any]:
        async with asyncio.timeout(self.timeout):
            if self._acker is not None and any(pending[4] for pending in trip):
                return await self._acker.scripts([(script, keys, args, acked) for script, keys, args, _, acked in trip])
            replies = await self._pipeline(trip)
            for i, (script, keys, args, *_) in enumerate(trip):
                if isinstance(replies[i], NoScriptError):  # Redis flushed its scripts: this call loads it again
                    replies[i] = await _settle(script(keys=keys, args=args))
        return replies

    async def _pipeline(self, trip: list[Pending]) -> list[Any]:
        if len(trip) == 1:
            script, keys, args, *_ = trip[0]
            return [await _settle(script(keys=keys, args=args))]
        pipe = self._redis.pipeline(transaction=False)
        for script, keys, args, *_ in trip:
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))


async def _settle(call: Any) -> Any:
    """A script's reply, or the Redis error it answered with (``ResponseError``), as a value."""
    try:
        return await call
    except ResponseError as error:
        return error
