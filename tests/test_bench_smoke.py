"""The benchmark harness works: a few-seconds run writes its result file and checks the stock.

No timing is asserted here: figures depend on the machine and its load. BENCHMARKS.md has the real run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from bench import report
from bench.checks import check_stock
from bench.load import WRK_DIR
from bench.redis_figures import redis_benchmark_path
from engine import Engine
from engine.keys import product_keys
from shared import signing
from tests.conftest import unavailable
from tests.support.bare_machine import shadow_path

PROJECT = Path(__file__).resolve().parents[1]
SMOKE_SCENARIOS = {
    "holds-hot",
    "holds-hot-replicated",
    "holds-hot-jwt",
    "purchases",
    "redis-benchmark",
    "engine",
    "memory",
    "drain",
}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench")
    scenarios = ",".join(sorted(SMOKE_SCENARIOS))
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "-s", scenarios, "--database-url", database_url, "--out", str(out)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results: dict[str, Any] = json.loads((out / "latest.json").read_text())
    results["stdout"] = done.stdout
    return results


@pytest.mark.slow
def test_smoke_run_writes_every_scenario_with_its_stock_check(smoke: dict[str, Any]) -> None:
    scenarios = smoke["scenarios"]
    # Without redis-benchmark (a machine with only Python) its scenario alone is skipped, and says why.
    missing = set() if redis_benchmark_path() else {"redis-benchmark"}
    assert set(smoke["skipped"]) == missing
    assert set(scenarios) == SMOKE_SCENARIOS - missing
    assert smoke["oversold_units"] == 0
    for name, found in scenarios.items():
        for run in found if isinstance(found, list) else [found]:
            assert run["check"]["ok"], (name, run["check"])
            assert run["check"]["oversold_units"] == 0


@pytest.mark.slow
def test_smoke_holds_are_counted_by_client_and_engine_alike(smoke: dict[str, Any]) -> None:
    [hot] = smoke["scenarios"]["holds-hot"]
    assert hot["connections"] == 50
    assert hot["requests"] > 0
    assert hot["counts"].get("201", 0) > 0
    assert hot["check"]["holds_granted"] >= hot["counts"]["201"]
    assert hot["errors"] == {}
    assert hot["server_cpu_us_per_request"] > 0  # what each hold cost the server, and the load meanwhile
    assert hot["load_average"] >= 0


@pytest.mark.slow
def test_smoke_holds_with_buyer_tokens_are_all_taken(smoke: dict[str, Any]) -> None:
    [jwt] = smoke["scenarios"]["holds-hot-jwt"]
    assert jwt["buyers"] == jwt["connections"] == 50
    assert jwt["counts"].get("201", 0) > 0
    assert set(jwt["counts"]) == {"201"}  # no 401: every connection's token verified
    assert jwt["check"]["ok"], jwt["check"]


@pytest.mark.slow
def test_smoke_replicated_holds_were_on_the_replica_when_answered(smoke: dict[str, Any]) -> None:
    [replicated] = smoke["scenarios"]["holds-hot-replicated"]
    assert replicated["ack_replicas"] == 1
    assert replicated["client_holds"] > 0
    assert replicated["replica_holds"] >= replicated["client_holds"]
    assert 0 < replicated["waits"] <= replicated["client_holds"] + 10  # one per batch (and per admin write)
    assert replicated["check"]["ok"], replicated["check"]


@pytest.mark.serial  # it reads the module's bench run, a load that runs alone like the slow tests beside it
def test_smoke_purchases_are_paid_and_reach_the_database(smoke: dict[str, Any]) -> None:
    [purchases] = smoke["scenarios"]["purchases"]
    assert purchases["counts"].get("paid", 0) > 0
    assert purchases["engine_paid"] >= purchases["counts"]["paid"]
    assert purchases["orders_in_postgresql"] == purchases["engine_orders"] > 0


@pytest.mark.slow
def test_smoke_reports_the_redis_side_figures(smoke: dict[str, Any]) -> None:
    scenarios = smoke["scenarios"]
    assert scenarios["engine"]["calls"] > 0
    assert scenarios["engine"]["errors"] == 0
    assert scenarios["memory"]["with_customer"]["holds"] == 2_000
    assert scenarios["memory"]["bytes_per_hold"] > 0
    assert scenarios["drain"]["events_per_second"] > 0
    measured = {figure["key"]: figure["measured"] for figure in smoke["figures"]}
    assert measured["oversold_units"] == 0
    assert "oversold units in any run" in smoke["stdout"]


@pytest.mark.slow
def test_smoke_measures_the_ceiling_redis_benchmark_puts_on_reserves(smoke: dict[str, Any]) -> None:
    if redis_benchmark_path() is None:
        unavailable("redis-benchmark is not installed (apt-get install redis-tools)")
    assert smoke["scenarios"]["redis-benchmark"]["per_second"] > 0
    measured = {figure["key"]: figure["measured"] for figure in smoke["figures"]}
    assert measured["engine_vs_redis_benchmark"] > 0


@pytest.mark.slow
def test_bench_without_redis_benchmark_runs_every_other_scenario_and_says_so_in_one_line(tmp_path: Path) -> None:
    path = shadow_path(tmp_path / "bin", os.environ.get("PATH", ""), hide=lambda name: name == "redis-benchmark")
    command = [sys.executable, "-m", "bench", "--smoke", "-s", "redis-benchmark,engine", "--out", str(tmp_path)]
    command += ["--database-url", f"sqlite:///{tmp_path / 'bench.db'}"]

    done = subprocess.run(
        command, cwd=PROJECT, env={**os.environ, "PATH": path}, capture_output=True, text=True, timeout=240
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    said = [line for line in done.stderr.splitlines() if "redis-benchmark" in line]
    assert len(said) == 1, done.stderr
    assert "engine reserves/s from Python ÷ redis-benchmark" in said[0]  # the figure it could not take
    assert "apt-get install redis-tools" in said[0]  # and how to get the tool
    results = json.loads((tmp_path / "latest.json").read_text())
    assert set(results["scenarios"]) == {"engine"}
    assert results["scenarios"]["engine"]["calls"] > 0
    assert set(results["skipped"]) == {"redis-benchmark"}
    measured = {figure["key"]: figure["measured"] for figure in results["figures"]}
    assert measured["engine_vs_redis_benchmark"] is None


def test_stock_check_reports_units_committed_beyond_total() -> None:
    engine = Engine(fakeredis.FakeRedis())
    engine.set_stock(7, 10)
    engine.reserve(7, 3)
    assert check_stock(engine, [7], client_holds=1).ok

    engine.redis.hset(product_keys(7).product, "held", 13)  # as if a script had handed out units it did not have

    check = check_stock(engine, [7])
    assert not check.ok
    assert check.oversold_units == 3  # held 13 of 10


def test_stock_check_reports_more_holds_seen_than_granted() -> None:
    engine = Engine(fakeredis.FakeRedis())
    engine.set_stock(7, 10)
    engine.reserve(7, 1)

    check = check_stock(engine, [7], client_holds=2)

    assert not check.ok
    assert "the client saw 2 holds granted" in check.problems[0]


def test_figures_are_ratios_within_one_run() -> None:
    results: dict[str, Any] = {
        "scenarios": {
            "livez": [{"connections": 50, "rps": 10_000.0}],
            "holds-hot": [{"connections": 50, "rps": 7_000.0}, {"connections": 500, "rps": 6_000.0, "p99_ms": 60.0}],
            "pg-row-lock": [{"connections": 50, "rps": 250.0}],
            "engine": {"per_second": 20_000.0},
            "redis-benchmark": {"per_second": 50_000.0},
        }
    }

    figures = {figure["key"]: figure for figure in report.figures(results)}

    assert figures["holds_vs_livez"]["measured"] == 0.7
    assert figures["holds_vs_livez"]["met"] is True
    assert figures["holds_vs_pg_row_lock"]["measured"] == 28
    assert figures["engine_vs_redis_benchmark"]["measured"] == 0.4
    assert figures["engine_vs_redis_benchmark"]["met"] is False
    assert figures["holds_p99_500"]["met"] is False
    assert figures["drain_events_per_second"]["measured"] is None


def test_wrk_purchase_script_signs_webhooks_as_the_api_verifies_them() -> None:
    pytest.importorskip("lupa")  # wrk runs LuaJIT; fakeredis[lua] brings lupa and its LuaJIT
    body = '{"order_id":"o1_01JD0Z3N5W8YQ2T4V6X8Z0A1B2","transaction_id":"t1-1","status":"success"}'
    secret = "0123456789abcdef0123456789abcdef"
    # A process of its own: once fakeredis has loaded lupa's Lua 5.1, LuaJIT's symbols resolve to it.
    script = (
        "import sys; from lupa import luajit21; "
        "m = luajit21.LuaRuntime().execute(open(sys.argv[1]).read()); "
        "print(m.hmac_sha256(sys.argv[2], sys.argv[3]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(WRK_DIR / "hmac.lua"), secret, f"1700000000.{body}"],
        capture_output=True,
        text=True,
        check=True,
    )

    signature = "v1=" + done.stdout.strip()

    assert signature == signing.sign(secret, 1700000000, body.encode())
    assert signing.verify(secret, "1700000000", signature, body.encode(), now=1700000000)
