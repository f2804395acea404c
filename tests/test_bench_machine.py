"""Every result file records the machine, and a casual run writes no tracked file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from bench import cli, machine, report


def test_cpu_model_is_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6248\n")

    assert machine.cpu_model(cpuinfo) == "Intel(R) Xeon(R) Gold 6248"


def test_cpu_model_without_cpuinfo_falls_back_to_the_platform(tmp_path: Path) -> None:
    assert machine.cpu_model(tmp_path / "missing") != ""


def test_the_machine_is_described_before_the_run() -> None:
    described = machine.describe()

    assert described["cpu_model"]
    assert described["cpus"] >= 1
    assert len(described["load_average_before"]) == 3


def test_server_versions_are_what_the_servers_report(redis_url: str, database_url: str) -> None:
    found = machine.server_versions(redis_url, database_url)

    assert str(found["redis_version"])[0].isdigit()
    assert str(found["database_version"]).split()[1][0].isdigit()  # "PostgreSQL 15.2 ..." or "sqlite 3.40.1"


def test_server_versions_of_unreachable_servers_are_none() -> None:
    found = machine.server_versions("redis://127.0.0.1:1/0", "postgresql+psycopg://postgres@127.0.0.1:1/none")

    assert found == {"redis_version": None, "database_version": None}


def test_a_run_writes_to_var_bench_by_default() -> None:
    args = cli.parse_args([])

    assert args.out == cli.SCRATCH_DIR
    assert args.out.parts[-2:] == ("var", "bench")
    assert args.out != cli.RESULTS_DIR


def test_the_tracked_results_take_the_publish_flag() -> None:
    assert cli.parse_args(["--publish"]).out == cli.RESULTS_DIR
    assert cli.parse_args(["--out", "elsewhere"]).out == Path("elsewhere")


def test_publish_and_out_together_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.parse_args(["--publish", "--out", "elsewhere"])
    assert "not allowed with" in capsys.readouterr().err


def test_the_report_names_the_machine() -> None:
    results: report.Results = {
        "machine": {
            "cpu_model": "Xeon",
            "cpus": 2,
            "load_average_before": [0.5, 0.4, 0.3],
            "redis_version": "7.0.15",
            "database_version": "PostgreSQL 15.2",
            "python": "3.11.7",
            "wrk": None,
        },
        "scenarios": {},
        "figures": [],
    }

    line = report.machine_line(results)

    for part in ("Xeon", "2 cores", "0.5, 0.4, 0.3", "Redis 7.0.15", "PostgreSQL 15.2"):
        assert part in line
    assert line in report.markdown(results)
    assert line in report.table(results)


def test_the_cpu_of_a_process_tree_counts_its_children() -> None:
    spin = "import time\nwhile time.process_time() < 0.3: pass\nprint('spun', flush=True)\ntime.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", spin], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "spun\n"

        assert machine.tree_cpu_seconds(child.pid) >= 0.25
        own = time.process_time()
        assert machine.tree_cpu_seconds(os.getpid()) >= own + 0.25  # ours, and the child's below us
    finally:
        child.kill()
        child.communicate()


def test_a_run_reports_its_cost_per_request(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        with machine.cost(os.getpid(), client) as spent:
            sum(i * i for i in range(200_000))
            client.ping()
    finally:
        client.close()

    found = machine.per_request(spent, 1000)

    assert found["load_average"] >= 0
    assert found["server_cpu_us_per_request"] > 0
    assert found["redis_cpu_us_per_request"] >= 0
    assert machine.per_request(spent, 0) == {"load_average": spent["load_average"]}
