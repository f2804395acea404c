"""One HTTP load run: the traffic its connections send, and what it measured (wrk or the Python client)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Tool = Literal["wrk", "python"]


@dataclass(frozen=True)
class Traffic:
    """What the connections send: ``script`` is a file in bench/wrk/ (without .lua), ``args`` its arguments."""

    script: str
    args: tuple[str, ...] = ()


@dataclass
class HttpRun:
    tool: Tool
    connections: int
    seconds: float
    requests: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    counts: dict[str, int] = field(default_factory=dict)
    """Answers by status code, or by kind where the traffic names them (hold, order, paid)."""
    cost: dict[str, float] = field(default_factory=dict)
    """What the run cost the machine, from the harness (``bench.machine.Cost``): load average at its start,
    CPU microseconds per request of the server's processes and of Redis. Steadier than a rate on a shared
    machine."""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "connections": self.connections,
            "seconds": round(self.seconds, 3),
            "requests": self.requests,
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p90_ms": round(self.p90_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "max_ms": round(self.max_ms, 3),
            "errors": self.errors,
            "counts": self.counts,
            **self.cost,
        }
