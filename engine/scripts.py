"""The Lua scripts, loaded once from package files.

Each script is ``lua/_prelude.lua`` (shared key layout, record codecs and reaping) followed by
``lua/<name>.lua``. Redis scripts cannot import one another, so the prelude is prepended here,
once, from files: no Lua is ever built from runtime values.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

NAMES = (
    "set_stock",
    "reserve",
    "reserve_batch",
    "release",
    "hold_status",
    "convert",
    "settle",
    "cancel",
    "order_status",
    "reap",
    "snapshot",
    "restore",
    "outbox_mark",
)


def _read(name: str) -> str:
    return (files("engine") / "lua" / f"{name}.lua").read_text(encoding="utf-8")


@cache
def source(name: str) -> str:
    if name not in NAMES:
        raise KeyError(name)
    return _read("_prelude") + "\n" + _read(name)
