"""Where the API's time goes under load: py-spy samples the server while wrk drives one scenario.

    python -m bench.profile [--scenario holds-hot] [--connections 50] [--duration 10] [--out DIR]

Writes the collapsed stacks to DIR/profile-<scenario>.txt and prints the functions with the most
samples, on their own (self) and with what they call (total).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bench import load, scenarios, servers
from bench.cli import DEFAULT_DATABASE_URL, SCRATCH_DIR
from bench.traffic import Traffic
from shared import logs


def _products(traffic: Traffic, products: list[int]) -> Callable[[scenarios.Bench], Traffic]:
    def prepare(bench: scenarios.Bench) -> Traffic:
        bench.put(products, scenarios.LOTS)
        return traffic

    return prepare


TRAFFIC: dict[str, Callable[[scenarios.Bench], Traffic]] = {
    "livez": _products(Traffic("livez"), []),
    "holds-hot": _products(Traffic("holds", ("1", "1")), [scenarios.HOT_PRODUCT]),
    "holds-spread": _products(Traffic("holds", ("1001", "2000")), list(scenarios.SPREAD_PRODUCTS)),
    "queue-poll": scenarios.polled_room,
}
"""What each scenario's state is made of before the server starts, and the traffic that drives it."""


def summarize(collapsed: Path, top: int) -> str:
    """Self and total sample counts per function, from py-spy's raw (collapsed stack) output."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        samples += n
        frames = [frame.split(" (")[0] + " (" + frame.split(" (")[-1] for frame in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    lines = [f"{samples} samples", "", "self %  function"]
    lines += [f"{100 * n / samples:6.1f}  {name}" for name, n in own.most_common(top)]
    lines += ["", "total %  function"]
    lines += [f"{100 * n / samples:7.1f}  {name}" for name, n in total.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=sorted(TRAFFIC), default="holds-hot")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--out", type=Path, default=SCRATCH_DIR, help="default var/bench; bench/results is tracked")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise SystemExit("py-spy is not installed: pip install -e '.[bench]'")
    logs.configure("console", level=logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    collapsed = args.out / f"profile-{args.scenario}.txt"
    with tempfile.TemporaryDirectory(prefix="flashsale-profile-") as tmp, servers.private_redis(Path(tmp)) as url:
        bench = scenarios.Bench(
            tool=load.choose_tool("auto"),
            server="uvicorn",
            redis_url=url,
            database_url=args.database_url,
            workdir=Path(tmp),
            seconds=args.duration,
            warmup=0,
            pool_size=0,
        )
        bench.reset()
        traffic = TRAFFIC[args.scenario](bench)
        command = servers.flashsale_command("uvicorn")
        with servers.serving("flashsale", command, bench.env, Path(tmp) / "server.log") as served:
            seconds = str(max(1, round(args.duration)))
            spy = [
                py_spy,
                "record",
                "-p",
                str(served.pid),
                "-d",
                seconds,
                "-r",
                "200",
                "-f",
                "raw",
                "-o",
                str(collapsed),
            ]
            recorder = threading.Thread(
                target=subprocess.run, args=(spy,), kwargs={"capture_output": True}, daemon=True
            )
            recorder.start()
            run = load.run(bench.tool, served.url, traffic, args.connections, args.duration)
            recorder.join(args.duration + 30)
        bench.close()
    print(f"{args.scenario}: {run.rps:,.0f} req/s at {args.connections} connections (sampled)\n")
    print(summarize(collapsed, args.top))
    print(f"\nwrote {collapsed} (collapsed stacks: flamegraph.pl or speedscope draw them)")


if __name__ == "__main__":
    main()
