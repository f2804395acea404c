"""Calls into the synchronous persistence layer, from a worker thread, with outages as 503s."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy import exc as sa_errors
from starlette.concurrency import run_in_threadpool

from api.errors import DatabaseUnavailable

P = ParamSpec("P")
T = TypeVar("T")

UNAVAILABLE = (sa_errors.OperationalError, sa_errors.InterfaceError, sa_errors.TimeoutError)


async def call(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except UNAVAILABLE as error:
        raise DatabaseUnavailable() from error
