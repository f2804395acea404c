"""Replies of the plain commands (no script): outbox entries, the product registry, running counts."""

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


def decode_stats(raw: dict[Any, Any]) -> dict[str, int]:
    """The ``n_*`` running counts of a product hash, without the prefix."""
    stats = {}
    for key, value in raw.items():
        name = text(key)
        if name.startswith("n_"):
            stats[name[2:]] = int(text(value))
    return stats
