"""The sync and asyncio engines are thin twins: what they share is written once (engine/operations.py)."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

ENGINE = Path(__file__).resolve().parent.parent / "engine"
LONGEST_SHARED_RUN = 5
"""Lines in a row that engine/client.py and engine/aio.py may have in common, once ``async``/``await`` are gone."""


def _code_lines(path: Path) -> list[str]:
    """The file's lines of code, as a reader compares them: stripped, without ``async``/``await``, blank lines,
    comments or imports."""
    lines = []
    for line in path.read_text().splitlines():
        code = re.sub(r"\b(async|await)\s+", "", line.strip())
        if code and not code.startswith(("#", "import ", "from ")):
            lines.append(code)
    return lines


def shared_runs(first: list[str], second: list[str], at_least: int) -> list[list[str]]:
    matcher = difflib.SequenceMatcher(None, first, second, autojunk=False)
    return [first[m.a : m.a + m.size] for m in matcher.get_matching_blocks() if m.size >= at_least]


def test_shared_runs_finds_a_repeated_block() -> None:
    block = [f"line {i}" for i in range(6)]

    assert shared_runs(["a", *block, "b"], ["c", *block], 6) == [block]
    assert shared_runs(["a", *block[:5], "b"], ["c", *block[:5]], 6) == []


def test_the_sync_and_async_engines_repeat_no_run_of_six_lines() -> None:
    client, aio = _code_lines(ENGINE / "client.py"), _code_lines(ENGINE / "aio.py")

    runs = shared_runs(client, aio, LONGEST_SHARED_RUN + 1)

    assert runs == [], "move what both engines do into engine/operations.py:\n" + "\n\n".join(map("\n".join, runs))
