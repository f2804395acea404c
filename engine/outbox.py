"""Reading and acknowledging the per-product outbox streams (plain commands, no script)."""

from __future__ import annotations

from typing import Any

from engine.calls import text
from engine.types import OutboxEvent


def decode_entries(product_id: int, reply: list[Any]) -> list[OutboxEvent]:
    events = []
    for entry_id, raw in reply:
        fields = {text(k): text(v) for k, v in raw.items()}
        events.append(OutboxEvent(product_id, text(entry_id), fields.get("event", ""), fields))
    return events


def decode_product_ids(members: Any) -> list[int]:
    return sorted(int(text(m)) for m in members)
