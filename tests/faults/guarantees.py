"""Record the figures of the last fault, soak and fuzz runs and put them into docs/guarantees.md.

The tests write their figures to var/fault-results/*.json (untracked), so running them changes no tracked file.

python -m tests.faults.guarantees          # copy var/fault-results/*.json to tests/faults/results, rewrite the table
python -m tests.faults.guarantees --check  # exit 1 if the table is not what tests/faults/results says
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).with_name("results")
"""The recorded figures, tracked: what the document shows."""
LATEST = ROOT / "var" / "fault-results"
"""Where the tests write the figures of their last run (tests/faults/harness.py)."""
DOCUMENT = ROOT / "docs" / "guarantees.md"
START = "<!-- figures:start (python -m tests.faults.guarantees) -->"
END = "<!-- figures:end -->"

ORDER = [
    "worker_killed",
    "api_killed",
    "redis_killed_aof_always",
    "redis_restarted_empty",
    "redis_stopped",
    "redis_failover_acked",
    "redis_failover_unacked",
    "redis_failover_stalled",
    "redis_cluster_failover",
    "postgres_stopped",
    "webhooks_concurrent",
    "redis_cluster",
    "several_api_processes",
    "soak",
    "fuzz_openapi",
]
"""Rows in the order the document discusses them; results with other names follow, sorted."""

COLUMNS = ("run", "test", "clients", "duration", "requests", "faults", "acknowledged", "lost", "oversold", "verdict")


def load(directory: Path = RESULTS) -> list[dict[str, Any]]:
    found = {path.stem: json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))}
    names = [n for n in ORDER if n in found] + sorted(set(found) - set(ORDER))
    return [found[name] for name in names]


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def row(result: dict[str, Any]) -> list[str]:
    orders, payments = result.get("acknowledged_orders"), result.get("acknowledged_payments")
    acknowledged = f"{orders} orders, {payments} payments" if orders is not None else None
    duration = result.get("duration_s")
    return [
        f"`{result['name']}`",
        f"`{result['test']}`",
        _cell(result.get("clients")),
        _cell(f"{duration} s" if duration is not None else None),
        _cell(result.get("requests")),
        _cell(result.get("faults_injected")),
        _cell(acknowledged),
        _cell(result.get("lost")),
        _cell(result.get("oversold")),
        ("pass" if result.get("passed") else "**FAIL**") + f" ({result.get('ran_at', '?')[:16].replace('T', ' ')})",
    ]


def table(results: Sequence[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row(result)) + " |" for result in results]
    details = ["", "Details of each run (every figure its test recorded):", ""]
    for result in results:
        extra = {
            k: v
            for k, v in result.items()
            if k not in ("name", "guarantee", "test", "ran_at", "passed", "problems", "steps", "statuses")
        }
        details.append(
            f"- `{result['name']}`: {result['guarantee']}. " + ", ".join(f"{k} {_compact(v)}" for k, v in extra.items())
        )
    return "\n".join(lines + details)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":")) if isinstance(value, dict | list) else str(value)


def render(document: str, results: Sequence[dict[str, Any]]) -> str:
    head, found, rest = document.partition(START)
    if not found or END not in rest:
        raise ValueError(f"{DOCUMENT} lacks the markers {START!r} and {END!r}")
    tail = rest.split(END, 1)[1]
    return f"{head}{START}\n{table(results)}\n{END}{tail}"


def main(argv: Sequence[str]) -> int:
    current = DOCUMENT.read_text()
    updated = render(current, load())
    if "--check" in argv:
        if updated != current:
            print(
                f"{DOCUMENT} is not up to date with {RESULTS}: run python -m tests.faults.guarantees", file=sys.stderr
            )
            return 1
        return 0
    recorded = record(LATEST, RESULTS)
    DOCUMENT.write_text(render(current, load()))
    print(f"{DOCUMENT}: figures of {len(load())} runs ({recorded} new from {LATEST})")
    return 0


def record(latest: Path, results: Path) -> int:
    """Copy the figures of the last runs over the recorded ones; returns how many were copied."""
    copied = 0
    for path in sorted(latest.glob("*.json")) if latest.is_dir() else []:
        shutil.copyfile(path, results / path.name)
        copied += 1
    return copied


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
