"""Figures without HTTP: Redis's own ceiling on reserve.lua, the engine from Python, memory per hold."""

from __future__ import annotations

import asyncio
import csv
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import redis

from engine import AsyncEngine, Engine
from engine.calls import REAP_BATCH
from engine.client_base import DEFAULT_HOLD_TTL_MS
from engine.coalesce import MAX_BATCH
from engine.connection import connect_async
from engine.keys import product_keys
from engine.pipelining import MAX_CALLS
from engine.scripts import source

REDIS_BENCHMARK_MISSING = (
    "redis-benchmark is not installed, so the redis-benchmark scenario and its figure (engine reserves/s from "
    "Python ÷ redis-benchmark EVALSHA rps) are skipped; every other scenario runs. Install it with "
    "`sudo apt-get install redis-tools` (Debian/Ubuntu) or `brew install redis` (macOS)."
)


def redis_benchmark_path() -> str | None:
    return shutil.which("redis-benchmark")


@dataclass
class Timed:
    """Calls made, how long they took in all, and their latency distribution."""

    calls: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int = 0

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "seconds": round(self.seconds, 3),
            "per_second": round(self.rate, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "max_ms": round(self.max_ms, 3),
            "errors": self.errors,
        }


def _percentile(ordered: list[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] if ordered else 0.0


def redis_benchmark(url: str, product_id: int, connections: int, requests: int) -> Timed:
    """``EVALSHA`` of the engine's reserve script, exactly as ``Engine.reserve(product_id, 1)`` sends it.

    Each call gets a fresh hold id from ``__rand_int__``, so it takes the path a new hold takes.
    """
    binary = redis_benchmark_path()
    if binary is None:  # the CLI skips the scenario before it gets here (scenarios.unavailable)
        raise RuntimeError(REDIS_BENCHMARK_MISSING)
    client = redis.Redis.from_url(url)
    sha = client.script_load(source("reserve"))
    client.close()
    parts = urlsplit(url)
    where = (
        ["-s", parts.path]
        if parts.scheme == "unix"
        else ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 6379)]
    )
    database = parts.path.strip("/") if parts.scheme != "unix" else ""
    if database.isdigit():
        where += ["--dbnum", database]
    keys = product_keys(product_id).all()
    argv = ["1", "01BENCH__rand_int__", str(DEFAULT_HOLD_TTL_MS), "", "", "", str(REAP_BATCH)]
    command = [binary, *where, "-c", str(connections), "-n", str(requests), "-r", "1000000000000", "--csv"]
    command += ["EVALSHA", sha, str(len(keys)), *keys, *argv]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    rows = list(csv.DictReader(line for line in done.stdout.splitlines() if line.startswith('"')))
    if done.returncode != 0 or not rows:
        raise RuntimeError(f"redis-benchmark failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    row = rows[-1]
    rps = float(row["rps"])
    return Timed(
        calls=requests,
        seconds=requests / rps,
        p50_ms=float(row["p50_latency_ms"]),
        p99_ms=float(row["p99_latency_ms"]),
        max_ms=float(row["max_latency_ms"]),
    )


def run_loop(main: Awaitable[Any]) -> Any:
    """Run a coroutine on uvloop, as the API server does, or asyncio's loop without it."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)  # type: ignore[arg-type]
    return uvloop.run(main)  # type: ignore[arg-type]


async def _callers(call: Callable[[int], Awaitable[object]], callers: int, seconds: float, limit: int) -> Timed:
    """``callers`` coroutines calling ``call(i)`` back to back until ``seconds`` pass or ``limit`` calls are made."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(limit))
    started = time.perf_counter()
    deadline = started + seconds

    async def caller() -> None:
        nonlocal errors
        for i in counter:
            if time.perf_counter() >= deadline:
                return
            begun = time.perf_counter()
            try:
                await call(i)
            except Exception:
                errors += 1
            latencies.append(time.perf_counter() - begun)

    await asyncio.gather(*(caller() for _ in range(callers)))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return Timed(
        len(ordered),
        elapsed,
        _percentile(ordered, 50) * 1000,
        _percentile(ordered, 99) * 1000,
        (ordered[-1] if ordered else 0.0) * 1000,
        errors,
    )


def engine_reserves(
    url: str, product_id: int, callers: int, seconds: float, *, coalesce: int = MAX_BATCH, pipeline: int = MAX_CALLS
) -> Timed:
    """Reserves per second from Python: ``AsyncEngine.reserve`` from ``callers`` concurrent coroutines."""

    async def main() -> Timed:
        client = connect_async(url)
        engine = AsyncEngine(client, coalesce=coalesce, pipeline=pipeline)
        try:
            await engine.reserve(product_id, 1)  # connects and loads the script before the clock starts
            return await _callers(lambda i: engine.reserve(product_id, 1), callers, seconds, 10**12)
        finally:
            await client.aclose()
            await client.connection_pool.disconnect()

    return run_loop(main())  # type: ignore[no-any-return]


@dataclass
class MemoryRun:
    holds: int
    used_memory_delta: int
    keys: dict[str, int]
    """``MEMORY USAGE`` of each of the product's keys after the holds."""

    @property
    def bytes_per_hold(self) -> float:
        return self.used_memory_delta / self.holds if self.holds else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "holds": self.holds,
            "used_memory_delta": self.used_memory_delta,
            "bytes_per_hold": round(self.bytes_per_hold, 1),
            "keys": self.keys,
        }


def memory_per_hold(url: str, product_id: int, holds: int, *, customers: bool) -> MemoryRun:
    """``INFO memory`` before and after ``holds`` active holds of one product (each by a new customer, or none)."""
    sync = redis.Redis.from_url(url)
    Engine(sync).set_stock(product_id, holds + 1)

    async def main() -> Timed:
        client = connect_async(url)
        engine = AsyncEngine(client)
        try:
            await engine.reserve(product_id, 1)  # the first hold creates the keys; measure from the second
            before[0] = _used_memory(sync)
            return await _callers(
                lambda i: engine.reserve(product_id, 1, customer_id=f"customer-{i}" if customers else None),
                50,
                3600,
                holds,
            )
        finally:
            await client.aclose()
            await client.connection_pool.disconnect()

    before = [0]
    timed: Timed = run_loop(main())
    if timed.errors:
        raise RuntimeError(f"{timed.errors} of {timed.calls} holds failed")
    delta = _used_memory(sync) - before[0]
    named = asdict(product_keys(product_id))
    keys = {name: int(sync.memory_usage(key, samples=0) or 0) for name, key in named.items()}
    sync.close()
    return MemoryRun(timed.calls, delta, {name: size for name, size in keys.items() if size})


def _used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])
