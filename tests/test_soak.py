"""``flashsale soak`` for 30 s: a whole stack under the mixed workload, with the worker killed twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import unavailable
from tests.faults.harness import Outcome
from tests.support.database import create_database, drop_database, postgres_reachable
from tests.support.servers import RedisServer, redis_server

SOAK_SECONDS = os.environ.get("FLASHSALE_SOAK_SECONDS", "30")
DATABASE_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/flashsale_test_f_soak_{os.getpid()}"


@pytest.fixture
def engine_server() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture
def soak_database() -> Iterator[str]:
    if not postgres_reachable(DATABASE_URL):
        unavailable("the soak needs PostgreSQL on 127.0.0.1:5432")
    create_database(DATABASE_URL)
    yield DATABASE_URL
    drop_database(DATABASE_URL)


@pytest.mark.slow
def test_soak_keeps_every_guarantee_under_a_mixed_workload(
    engine_server: RedisServer, soak_database: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
    env.update(
        {
            "FLASHSALE_REDIS_URL": engine_server.url,
            "FLASHSALE_DATABASE_URL": soak_database,
            "FLASHSALE_VAR_DIR": str(tmp_path / "var"),
            "FLASHSALE_LOG_FORMAT": "json",
        }
    )
    flashsale = str(Path(sys.executable).with_name("flashsale"))
    args = ["soak", "--duration", SOAK_SECONDS, "--clients", "100", "--kill-worker-every", "10", "--json"]
    result = subprocess.run([flashsale, *args], env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.stdout.startswith("{"), result.stderr[-2000:]
    report = json.loads(result.stdout)

    steps = report["load"]["steps"]
    outcome = Outcome(
        "soak",
        "A mixed workload with short TTLs and worker kills: the invariant holds every second, nothing is lost",
        {
            "clients": report["clients"],
            "duration_s": report["duration_s"],
            "requests": report["load"]["requests"],
            "faults_injected": report["worker_kills"],
            "acknowledged_orders": report["audit"]["orders_checked"],
            "acknowledged_payments": report["audit"]["payments_checked"],
            "lost": report["audit"]["lost"],
            "oversold": report["oversold"],
            "invariant_checks": report["invariant_checks"],
            "invariant_violations": report["invariant_violations"],
            "reconcile": report["reconcile"],
            "restocks": report["restocks"],
            "steps": steps,
        },
        list(report["failures"]),
    )
    if result.returncode != 0:
        outcome.problems.append(f"flashsale soak exited {result.returncode}")
    # The mix really was mixed: every kind of step happened.
    for step in ("held", "released", "abandoned", "ordered", "paid", "payment_failed", "cancelled", "duplicates"):
        if not steps.get(step):
            outcome.problems.append(f"the soak never got a {step!r} step acknowledged")
    if report["invariant_checks"] < float(SOAK_SECONDS) - 1:
        outcome.problems.append(f"only {report['invariant_checks']} invariant checks")
    if report["worker_kills"] < float(SOAK_SECONDS) // 10 - 1:
        outcome.problems.append(f"the worker was killed {report['worker_kills']} time(s)")
    outcome.check()
