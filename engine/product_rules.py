"""What a product may be: the bounds of its numbers, its name, its sale window. The one owner of these rules.

The engine checks the numbers of every call (``engine.calls``); the catalog checks a whole product before it puts
it (``persistence.catalog``); the admin API and ``flashsale product set`` check the same rules earlier, to answer
field by field, and the OpenAPI document states them. All of them read them here. They live in the engine, the
lowest layer that needs any of them, so that every layer above can read them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.exceptions import ProductRuleError
from engine.text import CONTROL_CHARACTERS, encodable

MAX_QUANTITY = 10_000
"""Units one hold takes at most (and so one order)."""
MAX_PRICE_CENTS = 10**14 // MAX_QUANTITY - 1
"""Lua writes numbers into records with 14 significant digits: an order's amount (price times quantity) must stay
below 10^14 to be exact."""
MAX_STOCK = 10**12
"""Units one product puts on sale at most."""
MAX_PER_CUSTOMER = 10**9
"""The highest limit of units per customer; 0 means no limit."""
MAX_NAME = 200
MAX_ADMIT_PER_SECOND = 1_000_000
"""The highest cap on a waiting room's admissions a second (docs/waiting-room.md)."""
MAX_ADMISSION_TTL_SECONDS = 3600
"""The longest a waiting room's admission may wait for its hold."""
DEFAULT_ADMISSION_TTL_SECONDS = 60
"""Characters of a product's name, once stripped (the catalog's column holds as many)."""

NOT_BLANK_PATTERN = "[^\\u0009-\\u000D\\u0020\\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
"""A name is not blank: it has a character outside Unicode's White_Space, spelled out rather than ``\\S``, whose
set differs between Python, ECMA-262 and Rust regular expressions. The same set ``str.strip`` removes, less the
control characters a name cannot hold anyway."""

SALE_BOUND_PATTERN = (
    "^2[0-9]{3}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-5][0-9](\\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
"""A sale bound as text: RFC 3339 written in the years 2000-2999 (so the engine's epoch milliseconds stay positive
and no offset carries it past year 9999), no leap second, at most nanoseconds. The OpenAPI document states the same
pattern beside ``format: date-time``, so the two agree on every string (``api.times.parse_sale_bound`` reads it)."""
_WIDEST_OFFSET = timedelta(hours=23, minutes=59)
EARLIEST_SALE_BOUND = datetime(2000, 1, 1, tzinfo=UTC) - _WIDEST_OFFSET
"""The earliest moment a sale bound may name: ``2000-01-01T00:00:00+23:59``, the first that the pattern takes."""
LATEST_SALE_BOUND = datetime(3000, 1, 1, tzinfo=UTC) + _WIDEST_OFFSET
"""Every sale bound names a moment before this one: the pattern's last, ``2999-12-31T23:59:59.999999999-23:59``,
is a minute earlier."""


def check_name(name: object) -> str:
    """The name stripped of surrounding white space; ``ProductRuleError`` if it is blank, longer than ``MAX_NAME``,
    or holds a control character or text UTF-8 cannot encode (a lone surrogate)."""
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_NAME:
        raise ProductRuleError("name", f"must be a non-empty string of at most {MAX_NAME} characters")
    if CONTROL_CHARACTERS.search(name) or not encodable(name):
        raise ProductRuleError("name", "must be UTF-8 text without control characters")
    return name.strip()


def _sale_bound(field: str, value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ProductRuleError(field, f"must be a timezone-aware datetime (UTC), got {value!r}")
    if not EARLIEST_SALE_BOUND <= value < LATEST_SALE_BOUND:
        raise ProductRuleError(field, f"must be in the years 2000 to 2999, got {value.isoformat()}")
    return value.astimezone(UTC)


def check_sale_window(starts: object, ends: object) -> tuple[datetime | None, datetime | None]:
    """The window's bounds in UTC (None: open on that side); ``ProductRuleError`` for a bound that is not an aware
    datetime, or names a moment outside the years the pattern takes, or a window that ends before it starts."""
    start, end = _sale_bound("sale_starts_at", starts), _sale_bound("sale_ends_at", ends)
    if start is not None and end is not None and end <= start:
        raise ProductRuleError("sale_ends_at", "must be after sale_starts_at")
    return start, end
