"""Request coalescing: concurrent reserves of one queue ride in one ``reserve_batch`` call (and concurrent polls, or
joins, of one waiting room in one ``queue_poll_batch`` or ``queue_join_batch`` call, queued by product).

A queue is whatever one script call can reach: every product on one Redis, one hash slot on a cluster (the
engine chooses). While a queue's batch is in flight, new reserves for it queue; when it returns, the queue
goes as the next batch. A lone reserve goes at once (one event-loop turn later), so coalescing costs no latency when
idle, and under a burst it turns N round trips, N script calls and N reaping passes into one of each.

A batch is shared, its callers are not: a request that cannot be sent (``check`` refuses it) fails at
``submit``, alone, before it joins a batch; a caller that gave up (its deadline passed) leaves the queue
without being sent; and each caller hears its own result or error.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from engine.waiters import answer

R = TypeVar("R")  # a prepared request
T = TypeVar("T")  # its result

MAX_BATCH = 128
"""Reserves in one script call at most: a batch holds Redis for tens of microseconds per reserve."""

Send = Callable[[int, Sequence[R]], Awaitable[Sequence[T | Exception]]]
Check = Callable[[R], object]
"""Raises if a request could not be sent (its text cannot be encoded): a batch's packing must never fail."""


class Coalescer(Generic[R, T]):
    def __init__(
        self,
        send: Send[R, T],
        *,
        max_batch: int = MAX_BATCH,
        max_in_flight: int = 1,
        check: Check[R] | None = None,
    ) -> None:
        self._send = send
        self._check = check
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._queues: dict[int, list[tuple[R, asyncio.Future[T]]]] = {}
        self._senders: dict[int, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, key: int, request: R) -> T:
        if self._check is not None:
            self._check(request)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queues.setdefault(key, []).append((request, future))
        if self._senders.get(key, 0) < self.max_in_flight:
            self._senders[key] = self._senders.get(key, 0) + 1
            # The sender serves every caller and belongs to none: it must not run in (and expire with) the
            # context, such as a request's deadline, of the caller that happened to start it.
            task = loop.create_task(self._drain(key), context=contextvars.Context())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self, key: int) -> None:
        try:
            while queue := self._queues.get(key):
                batch = queue[: self.max_batch]
                del queue[: self.max_batch]
                if not queue:
                    del self._queues[key]
                # A caller that gave up (cancelled, or past its deadline) is not sent: nobody would hear the answer.
                live = [(request, future) for request, future in batch if not future.done()]
                if live:
                    await self._answer(key, live)
        finally:
            left = self._senders.pop(key) - 1
            if left:
                self._senders[key] = left

    async def _answer(self, key: int, batch: list[tuple[R, asyncio.Future[T]]]) -> None:
        await answer([future for _, future in batch], self._send(key, [request for request, _ in batch]))
