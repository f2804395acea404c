"""One call description per plain command (no script): what it sends, and how to read its reply.

The product registry, the outbox's reads and acknowledgements, and the running counts: both engine clients send
these as they are; only the line that awaits differs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from engine import outbox
from engine.calls import text
from engine.keys import PRODUCTS_KEY, product_keys
from engine.types import OutboxEvent

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Command(Generic[T]):
    args: tuple[Any, ...]
    """The command as sent: its name, then its key, then the rest."""
    decode: Callable[[Any], T]
    acked: bool = False
    """With ``ack``, answered once the replicas have it (engine.replication): a write the sale relies on, or a
    read that must not run ahead of the replicas (the outbox the drain carries to PostgreSQL)."""

    @property
    def key(self) -> str:
        return str(self.args[1])


def _int(reply: Any) -> int:
    return int(reply)


def _none(reply: Any) -> None:
    return None


def register_product(product_id: int) -> Command[None]:
    """The product joins the registry (after ``set_stock`` or ``restore`` put it)."""
    return Command(("SADD", PRODUCTS_KEY, product_id), _none, acked=True)


def product_ids() -> Command[list[int]]:
    return Command(("SMEMBERS", PRODUCTS_KEY), decode_product_ids)


def count_refund(product_id: int) -> Command[None]:
    """Count a refund found outside the scripts (a payment for an order Redis no longer keeps)."""
    return Command(("HINCRBY", product_keys(product_id).product, "n_refund_required", 1), _none)


def read_outbox(product_id: int, count: int = 1000) -> Command[list[OutboxEvent]]:
    """The oldest ``count`` events; with ``ack``, only once the replicas have them (NotReplicated if not), so
    that nothing reaches PostgreSQL that a failover could take from Redis."""

    def decode(reply: Any) -> list[OutboxEvent]:
        return decode_entries(product_id, reply)

    return Command(("XRANGE", product_keys(product_id).outbox, "-", "+", "COUNT", count), decode, acked=True)


def ack_outbox(product_id: int, entry_ids: Sequence[str]) -> Command[int]:
    return Command(("XDEL", product_keys(product_id).outbox, *entry_ids), _int)


def outbox_backlog(product_id: int) -> Command[int]:
    return Command(("XLEN", product_keys(product_id).outbox), _int)


def stats(product_id: int) -> Command[dict[str, int]]:
    """Running counts kept by the scripts (holds, refusals, expiries, orders, payments, duplicates)."""
    return Command(("HGETALL", product_keys(product_id).product), decode_stats)


def decode_entries(product_id: int, reply: list[Any]) -> list[OutboxEvent]:
    events = []
    for entry_id, raw in reply:
        fields = {text(k): text(v) for k, v in raw.items()}
        events.append(outbox.entry(product_id, text(entry_id), fields))
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
