"""What a result file says of the machine it was measured on: CPU, cores, load before the run, server versions.

A rate means little without the machine: the ratio to pg-row-lock, for one, moves with how fast the CPU is
compared with the disk's commit latency. So every result file records it.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa

from bench import load
from persistence.db import make_engine

CPUINFO = Path("/proc/cpuinfo")


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
