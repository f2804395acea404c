"""What a result file says of the machine it was measured on: CPU, cores, load before the run, server versions.

A rate means little without the machine: the ratio to pg-row-lock, for one, moves with how fast the CPU is
compared with the disk's commit latency. So every result file records it.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa

from bench import load
from persistence.db import make_engine

CPUINFO = Path("/proc/cpuinfo")
PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what the platform module says, else ''."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip() in ("model name", "Hardware", "Processor") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def describe() -> dict[str, Any]:
    """The machine before the run: read it first, so that the load average is not the run's own."""
    wrk = _version(["wrk", "-v"]).splitlines() if load.wrk_path() else []
    return {
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "wrk": wrk[0] if wrk else None,
        "redis_server": _version(["redis-server", "--version"]),
    }


def server_versions(redis_url: str, database_url: str) -> dict[str, str | None]:
    """The versions the measured servers report: Redis's ``INFO server``, PostgreSQL's ``server_version``."""
    found: dict[str, str | None] = {"redis_version": None, "database_version": None}
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2)
    try:
        found["redis_version"] = str(client.info("server").get("redis_version"))
    except redis.RedisError:
        pass
    finally:
        client.close()
    db = make_engine(database_url)
    try:
        with db.connect() as connection:
            if db.dialect.name == "postgresql":
                version = connection.execute(sa.text("SHOW server_version")).scalar_one()
                found["database_version"] = f"PostgreSQL {version}"
            else:
                numbers = connection.dialect.server_version_info or ()
                found["database_version"] = f"{db.dialect.name} {'.'.join(map(str, numbers))}".strip()
    except sa.exc.SQLAlchemyError:
        pass
    finally:
        db.dispose()
    return found


def _stat(pid: int) -> tuple[int, float] | None:
    """A process's parent and its CPU seconds (user + system) from /proc; None if it is gone or unreadable."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, ... utime is field 14
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds used so far by ``root`` and every process below it (``serve --workers N`` forks its workers)."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in PROC.iterdir() if PROC.is_dir() else ():
        if entry.name.isdigit() and (found := _stat(int(entry.name))) is not None:
            parents[int(entry.name)], cpu[int(entry.name)] = found
    tree, grew = {root}, True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= below
        grew = bool(below)
    return sum(cpu.get(pid, 0.0) for pid in tree)


def redis_cpu_seconds(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


@contextmanager
def cost(server_pid: int | None, client: redis.Redis) -> Iterator[dict[str, float]]:
    """Measures what the block cost: fill in ``requests`` afterwards with ``per_request``."""
    found: dict[str, float] = {"load_average": round(os.getloadavg()[0], 2)}
    server0 = tree_cpu_seconds(server_pid) if server_pid else 0.0
    redis0, wall0 = redis_cpu_seconds(client), time.monotonic()
    yield found
    found["server_cpu_s"] = round(tree_cpu_seconds(server_pid) - server0, 3) if server_pid else 0.0
    found["redis_cpu_s"] = round(redis_cpu_seconds(client) - redis0, 3)
    found["wall_s"] = round(time.monotonic() - wall0, 3)


def per_request(found: dict[str, float], requests: int) -> dict[str, float]:
    """Load average at the start, and CPU microseconds per request of the server's processes and of Redis."""
    if not requests:
        return {"load_average": found["load_average"]}
    return {
        "load_average": found["load_average"],
        "server_cpu_us_per_request": round(1e6 * found["server_cpu_s"] / requests, 1),
        "redis_cpu_us_per_request": round(1e6 * found["redis_cpu_s"] / requests, 1),
    }
