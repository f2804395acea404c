"""Text the stores can keep: what UTF-8 can encode and, for text that reaches PostgreSQL, no control characters."""

from __future__ import annotations

import re

CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""No product name holds one, nor any text the API takes: PostgreSQL refuses NUL in text outright, and one accepted
into the engine would stop the outbox drain."""
TEXT_PATTERN = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"
"""``CONTROL_CHARACTERS`` refused, as a JSON Schema pattern, for the OpenAPI document."""


def encodable(value: str) -> bool:
    """Whether UTF-8 can write ``value``: every string can, except one holding a lone surrogate (``"\\ud800"``),
    which Python's own JSON parser accepts and redis-py cannot send."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
