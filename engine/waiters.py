"""Answering callers who wait on a shared call (a coalesced batch, a pipelined round trip)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import TypeVar

T = TypeVar("T")


async def answer(futures: Sequence[asyncio.Future[T]], results: Awaitable[Sequence[T | Exception]]) -> None:
    """Await the shared call, then hand each waiting caller its own result or error, in order.

    If the call fails as a whole (Redis unavailable), every caller hears that error. A caller
    cancelled meanwhile is skipped; if this task is cancelled, so are all its callers.
    """
    try:
        outcomes = await results
    except Exception as error:
        for future in futures:
            if not future.done():
                future.set_exception(error)
        return
    except asyncio.CancelledError:
        for future in futures:
            future.cancel()
        raise
    for future, outcome in zip(futures, outcomes, strict=True):
        if future.done():
            continue
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
