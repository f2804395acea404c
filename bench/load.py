"""HTTP load: one traffic shape, driven by wrk (preferred) or by the Python fallback client."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

from bench.pyclient import run_python
from bench.traffic import HttpRun, Tool, Traffic

WRK_DIR = Path(__file__).resolve().parent / "wrk"
WRK_MISSING = (
    "wrk is not installed: the HTTP scenarios fall back to the Python client, which is slower than the server "
    "it measures and so understates it. Install wrk with `sudo apt-get install wrk` (Debian/Ubuntu) "
    "or `brew install wrk` (macOS)."
)


def wrk_path() -> str | None:
    return shutil.which("wrk")


def choose_tool(wanted: str) -> Tool:
    """``auto`` is wrk when installed, else the Python client; asking for wrk without it is an error."""
    if wanted == "python":
        return "python"
    if wrk_path() is not None:
        return "wrk"
    if wanted == "wrk":
        raise SystemExit(WRK_MISSING)
    return "python"


def run(tool: Tool, base_url: str, traffic: Traffic, connections: int, seconds: float) -> HttpRun:
    if tool == "wrk":
        return run_wrk(base_url, traffic, connections, seconds)
    return run_python(base_url, traffic, connections, seconds)


def run_wrk(base_url: str, traffic: Traffic, connections: int, seconds: float) -> HttpRun:
    threads = min(connections, os.cpu_count() or 1)
    command = [
        wrk_path() or "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_DIR / f"{traffic.script}.lua"),
        base_url,
        "--",
        *traffic.args,
        secrets.token_hex(4),  # the run's nonce, last: purchases.lua makes its transaction ids unique with it
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**os.environ, "BENCH_WRK_DIR": str(WRK_DIR)},
        timeout=seconds + 60,
        check=False,
    )
    summary = next((line for line in done.stdout.splitlines() if line.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or summary is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    report = json.loads(summary.removeprefix("BENCH_JSON "))
    latency = report["latency_us"]
    errors = {kind: count for kind, count in report["errors"].items() if count}
    return HttpRun(
        tool="wrk",
        connections=connections,
        seconds=report["duration_us"] / 1e6,
        requests=report["requests"],
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        errors=errors,
        counts=report["counts"],
    )
