"""Millisecond timestamps (Redis server time, as the engine keeps them) to and from UTC datetimes and RFC 3339."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from functools import lru_cache

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def opt_from_ms(ms: int | None) -> datetime | None:
    return from_ms(ms) if ms else None


def to_ms(moment: datetime) -> int:
    return (moment - EPOCH) // _MS


def opt_to_ms(moment: datetime | None) -> int | None:
    return None if moment is None else to_ms(moment)


@lru_cache(maxsize=1024)
def iso(ms: int) -> str:
    """``2026-11-28T01:19:44.123Z`` for epoch milliseconds (the API's answers and the merchant events).

    Cached: the holds of one coalesced reserve share their expiry, and strftime is a hot path's biggest cost.
    """
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"
