"""Asking the workers to drain the outbox after a write, without the request waiting for it."""

from __future__ import annotations

import asyncio
from typing import Protocol

from starlette.concurrency import run_in_threadpool

from shared.logs import get_logger

log = get_logger("api.drain_requests")


class Trigger(Protocol):
    def request(self) -> object: ...

    def close(self) -> None: ...


class DrainRequests:
    """Fires the (synchronous, debounced) trigger from a worker thread; a failure is logged, never raised.

    Missing a trigger loses nothing: the events wait in the outbox for the scheduled drain.
    """

    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger
        self._pending: set[asyncio.Task[None]] = set()

    def send(self) -> None:
        """Ask for a drain, in the background: the caller does not wait."""
        task = asyncio.get_running_loop().create_task(self._fire())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _fire(self) -> None:
        try:
            await run_in_threadpool(self.trigger.request)
        except Exception as error:
            log.warning("drain_trigger_failed", error=str(error))

    async def close(self) -> None:
        """Wait for triggers in flight, then fire one still waiting out its debounce window."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        try:
            await run_in_threadpool(self.trigger.close)
        except Exception as error:
            log.warning("drain_trigger_failed", error=str(error))
