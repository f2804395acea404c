"""Millisecond timestamps (Redis server time, as the engine keeps them) to and from UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
