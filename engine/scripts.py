"""The Lua scripts, loaded once from package files.

Each product script is ``lua/_prelude.lua`` (shared key layout, record codecs and reaping) followed by
``lua/<name>.lua``. Redis scripts cannot import one another, so the prelude is prepended here,
once, from files: no Lua is ever built from runtime values. The sale-wide scripts touch one key outside
every product's slot (a transaction id's claim) and take no prelude.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

PRODUCT_SCRIPTS = (
    "set_stock",
    "reserve",
    "reserve_batch",
    "release",
    "hold_status",
    "convert",
    "settle",
    "processing",
    "cancel",
    "order_status",
    "order_states",
    "reap",
    "snapshot",
    "restore",
    "outbox_mark",
    "queue_join",
    "queue_join_batch",
    "queue_poll",
    "queue_poll_batch",
    "queue_leave",
    "queue_info",
)
SALE_SCRIPTS = ("claim_transaction", "release_transaction")
"""Scripts on one sale-wide key (engine.keys.transaction_key), not on a product's keys."""
NAMES = PRODUCT_SCRIPTS + SALE_SCRIPTS


def _read(name: str) -> str:
    return (files("engine") / "lua" / f"{name}.lua").read_text(encoding="utf-8")


@cache
def source(name: str) -> str:
    if name in SALE_SCRIPTS:
        return _read(name)
    if name not in PRODUCT_SCRIPTS:
        raise KeyError(name)
    return _read("_prelude") + "\n" + _read(name)
