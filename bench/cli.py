"""``flashsale bench`` / ``python -m bench``: run the scenarios, print the table, write the JSON and the plot."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import load, machine, report, scenarios, servers
from bench.drain_throughput import ensure_database
from engine.connection import DEFAULT_MAX_CONNECTIONS
from persistence.migrate import upgrade
from shared import logs

RESULTS_DIR = Path(__file__).resolve().parent / "results"
"""The tracked results (BENCHMARKS.md's figures): written only with --publish."""
SCRATCH_DIR = Path(__file__).resolve().parents[1] / "var" / "bench"
"""Where a run writes by default: untracked, so that a casual run changes no tracked file."""
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/flashsale_bench"
DEFAULT_CONNECTIONS = "10,50,100,250,500"
SMOKE_CONNECTIONS = "50"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="flashsale bench",
        description="Benchmark flashsale against its ceilings (GET /livez, redis-benchmark) and the "
        "PostgreSQL row-lock design, each scenario on a freshly started server.",
        epilog=f"Scenarios: {', '.join(scenarios.ALL)}. The HTTP scenarios livez, holds-hot and pg-row-lock run "
        "at every --connections count, the others at a fixed count (holds-paced at 500, the rest at 50).",
    )
    parser.add_argument(
        "-s",
        "--scenario",
        action="append",
        help="scenario(s) to run, comma-separated or repeated (default: all)",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per run (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each measured run (2)")
    parser.add_argument(
        "--connections",
        help=f"connection counts of the ladders (default {DEFAULT_CONNECTIONS}; {SMOKE_CONNECTIONS} with --smoke)",
    )
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto", help="HTTP load generator")
    parser.add_argument("--server", choices=("uvicorn",), default="uvicorn", help="ASGI server to measure")
    parser.add_argument(
        "--redis-url",
        help="use this Redis (its database is EMPTIED between scenarios) instead of starting a private redis-server",
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="created and migrated if missing")
    parser.add_argument(
        "--pool-size",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        help=f"pg-row-lock's database connections: flashsale's Redis pool size (default {DEFAULT_MAX_CONNECTIONS})",
    )
    parser.add_argument("--name", default="latest", help="results go to OUT/NAME.json and OUT/NAME.png")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, default=SCRATCH_DIR, help="results directory (default var/bench)")
    where.add_argument(
        "--publish",
        action="store_true",
        help="write the tracked results, bench/results/NAME.json and .png, that BENCHMARKS.md cites",
    )
    parser.add_argument("--memory-holds", type=int, default=100_000, help="holds for the memory figure")
    parser.add_argument("--drain-events", type=int, default=10_000, help="outbox events per drain round")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of every scenario, interleaved; each figure is the round with the median rate (default 1)",
    )
    parser.add_argument("--smoke", action="store_true", help="a few seconds in all, to check the harness works")
    args = parser.parse_args(argv)
    chosen = [name for value in args.scenario or [",".join(scenarios.ALL)] for name in value.split(",") if name]
    unknown = [name for name in chosen if name not in scenarios.ALL]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(scenarios.ALL)}")
    args.scenario = list(dict.fromkeys(chosen))
    try:
        given = args.connections or (SMOKE_CONNECTIONS if args.smoke else DEFAULT_CONNECTIONS)
        args.connections = sorted({int(n) for n in given.split(",") if n})
    except ValueError:
        parser.error("--connections takes comma-separated integers, such as 10,50,500")
    if not args.connections or min(args.connections) < 1:
        parser.error("--connections needs at least one count above 0")
    if args.publish:
        args.out = RESULTS_DIR
    return args


@contextmanager
def redis_for(url: str | None, workdir: Path) -> Iterator[str]:
    if url:
        yield url
        return
    with servers.private_redis(workdir / "redis") as private:
        yield private


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke:
        args.duration, args.warmup, args.memory_holds, args.drain_events = 1.0, 0.0, 2_000, 300
    tool = load.choose_tool(args.client)
    if tool == "python":
        print(f"note: {load.WRK_MISSING}" if load.wrk_path() is None else "note: --client python", file=sys.stderr)
    skipped = {name: why for name in args.scenario if (why := scenarios.unavailable(name)) is not None}
    for why in skipped.values():
        print(f"note: {why}", file=sys.stderr)
    args.scenario = [name for name in args.scenario if name not in skipped]
    load_now, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if load_now > cpus / 2:
        print(
            f"note: the load average is {load_now:.1f} on {cpus} cores: other work will lower and scatter the figures",
            file=sys.stderr,
        )
    logs.configure("console", level=logging.WARNING)
    ensure_database(args.database_url)
    upgrade(args.database_url)

    results: report.Results = {
        "name": args.name,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "flashsale bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine.describe(),
        "settings": {
            "tool": tool,
            "server": args.server,
            "workers": 1,
            "repeat": args.repeat,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "connections": args.connections,
            "pool_size": args.pool_size,
            "redis": "private redis-server (no persistence)" if not args.redis_url else args.redis_url,
            "database": args.database_url.rsplit("@", 1)[-1],
        },
        "scenarios": {},
        "skipped": skipped,
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="flashsale-bench-") as tmp, redis_for(args.redis_url, Path(tmp)) as url:
        results["machine"].update(machine.server_versions(url, args.database_url))
        bench = scenarios.Bench(
            tool=tool,
            server=args.server,
            redis_url=url,
            database_url=args.database_url,
            workdir=Path(tmp),
            seconds=args.duration,
            warmup=args.warmup,
            pool_size=args.pool_size,
            redis_benchmark_requests=2_000 if args.smoke else int(30_000 * args.duration),
            memory_holds=args.memory_holds,
            drain_events=args.drain_events,
            drain_rounds=1 if args.smoke else 3,
        )
        try:
            rounds: dict[str, list[Any]] = {name: [] for name in args.scenario}
            for round_ in range(args.repeat):
                for name in args.scenario:
                    begun = time.monotonic()
                    rounds[name].append(run_scenario(bench, name, args.connections, round_, args.repeat))
                    print(f"   ({time.monotonic() - begun:.1f} s)", file=sys.stderr, flush=True)
            results["scenarios"] = {name: median(found) for name, found in rounds.items()}
        finally:
            bench.close()
    results["seconds"] = round(time.monotonic() - started, 1)
    results["figures"] = report.figures(results)
    results["oversold_units"] = report.oversold_units(results)
    print(report.table(results))
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_json(results, args.out / f"{args.name}.json")
    print(f"\nwrote {args.out / f'{args.name}.json'}")
    if any(name in results["scenarios"] for name, _ in report.PLOTTED):
        if report.plot(results, args.out / f"{args.name}.png"):
            print(f"wrote {args.out / f'{args.name}.png'}")
        else:
            print("no plot: matplotlib is not installed (pip install -e '.[bench]')", file=sys.stderr)
    return 1 if report.failed_checks(results) or results["oversold_units"] else 0


RATE_KEYS = ("rps", "per_second", "events_per_second", "bytes_per_hold", "bytes_per_ticket")


def _rate(run: dict[str, Any]) -> float:
    return float(next(run[key] for key in RATE_KEYS if key in run))


def _median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate, with every round's rate beside it; its checks cover all the rounds."""
    ordered = sorted(runs, key=_rate)
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    if len(runs) > 1:
        chosen["rounds"] = [_rate(run) for run in runs]
        checks = [run["check"] for run in runs if "check" in run]
        if checks:
            chosen["check"] = {
                **chosen["check"],
                "oversold_units": sum(c["oversold_units"] for c in checks),
                "ok": all(c["ok"] for c in checks),
                "problems": [p for c in checks for p in c["problems"]],
            }
    return chosen


def median(rounds: list[Any]) -> Any:
    """One result per scenario from its rounds: per connection count for the HTTP scenarios."""
    if isinstance(rounds[0], dict):
        return _median_of(rounds)
    by_connections: dict[int, list[dict[str, Any]]] = {}
    for points in rounds:
        for point in points:
            by_connections.setdefault(point["connections"], []).append(point)
    return [_median_of(runs) for _, runs in sorted(by_connections.items())]


def run_scenario(bench: scenarios.Bench, name: str, ladder: list[int], round_: int = 0, rounds: int = 1) -> Any:
    print(f"-- {name}" + (f" (round {round_ + 1} of {rounds})" if rounds > 1 else ""), file=sys.stderr, flush=True)
    if name in scenarios.OTHER_SCENARIOS:
        return scenarios.OTHER_SCENARIOS[name](bench)
    counts = ladder if name in scenarios.LADDERS else [scenarios.FIXED_CONNECTIONS[name]]
    points = []
    for connections in counts:
        found = scenarios.HTTP_SCENARIOS[name](bench, connections).as_json()
        print(
            f"   {connections:>4} connections: {found['rps']:>10,.0f} req/s  p99 {found['p99_ms']:.1f} ms",
            file=sys.stderr,
        )
        points.append(found)
    return points
