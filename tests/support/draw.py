"""The pre-queue verifier exactly as docs/waiting-room.md prints it, loaded from the page for the tests."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "waiting-room.md"


def verifier_source() -> str:
    """The page's one ``python`` block, under "Verify a draw"."""
    section = PAGE.read_text(encoding="utf-8").split("### Verify a draw", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "docs/waiting-room.md lost its verifier"
    return match.group(1)


def _load() -> Callable[[str, str, list[int]], list[int]]:
    namespace: dict[str, object] = {"__name__": "verify_draw"}
    exec(compile(verifier_source(), str(PAGE), "exec"), namespace)
    return namespace["draw_order"]  # type: ignore[return-value]


draw_order = _load()
