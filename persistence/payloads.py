"""A webhook body as the tables keep it: parsed JSON, with what PostgreSQL refuses made harmless."""

from __future__ import annotations

from typing import Any

import orjson


def payload_json(raw: str) -> Any:
    """The webhook body as JSON. PostgreSQL's jsonb and text refuse NUL, so it becomes U+FFFD rather
    than jam a product's drain; anything else is kept as it came (a body that is not JSON, as a string)."""
    if not raw:
        return None
    raw = raw.replace("\x00", "\ufffd").replace("\\u0000", "\\ufffd")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
