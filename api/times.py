"""RFC 3339 timestamps in UTC, to and from the engine's epoch milliseconds."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from engine.product_rules import SALE_BOUND_PATTERN
from persistence.times import iso as iso  # the one formatter; the merchant events use it too
from persistence.times import to_ms

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)

_SALE_BOUND = re.compile(SALE_BOUND_PATTERN, re.ASCII)


def iso_datetime(value: datetime | None) -> str | None:
    """A datetime the database read, in RFC 3339 (a naive one is UTC, as SQLite hands them back)."""
    if value is None:
        return None
    return iso(to_ms(value if value.tzinfo is not None else value.replace(tzinfo=UTC)))


def parse_rfc3339(text: str) -> datetime:
    """An aware UTC datetime; raises ValueError for anything that is not a full RFC 3339 date-time."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError("expected an RFC 3339 date-time with a time zone, such as 2026-01-31T12:00:00Z")
    year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
    fraction = (match.group(7) or ".0")[1:]
    micro = int(fraction[:6].ljust(6, "0"))
    zone = match.group(8)
    offset = timedelta(0) if zone in ("Z", "z") else _offset(zone)
    # RFC 3339 allows a leap second (:60); datetime does not, so it becomes the next second.
    leap = second == 60
    try:
        parsed = datetime(year, month, day, hour, minute, 59 if leap else second, micro, tzinfo=UTC)
        return parsed - offset + timedelta(seconds=1 if leap else 0)
    except OverflowError:
        raise ValueError(f"{text} is out of range") from None


def _offset(zone: str) -> timedelta:
    hours, minutes = int(zone[1:3]), int(zone[4:6])
    if hours > 23 or minutes > 59:
        raise ValueError(f"bad time zone offset {zone}")
    sign = -1 if zone[0] == "-" else 1
    return sign * timedelta(hours=hours, minutes=minutes)


def parse_sale_bound(text: str) -> datetime:
    """A sale window's bound: ``engine.product_rules.SALE_BOUND_PATTERN`` and a real calendar moment, or ValueError."""
    if _SALE_BOUND.fullmatch(text) is None:  # fullmatch: Python's `$` would also match before a final newline
        raise ValueError(
            "expected an RFC 3339 date-time in the years 2000 to 2999, whole seconds 00-59, "
            "such as 2026-01-31T12:00:00Z"
        )
    return parse_rfc3339(text)
