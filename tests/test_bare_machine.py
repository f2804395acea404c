"""The quick start's promise: on a machine with only Python and make, ``make test`` passes.

The whole suite runs once more inside ``tests/support/bare_machine.py``'s namespaces: no Redis or PostgreSQL
answering, none of their programs (nor wrk, nor chromium) to be found, ``CI`` unset. Only the whole suite
proves the promise: the next test that needs a tool may be in any module (the bench smoke test was, and a
list of modules chosen before it would have missed it). It costs about three minutes, not the suite's
seven to ten, because what is slow in CI (the fault suites, the soak, the browser tests) skips there, and
says why. It is ``make test``'s pytest run: lint and typecheck read only the sources, the same everywhere.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import unavailable
from tests.support import bare_machine

PROJECT = Path(__file__).resolve().parents[1]
SECONDS = 1500
"""The bare run's limit: it takes about 180 s alone on 2 cores; a busy machine may take several times that."""
EXPECTED_SKIPS = {
    "redis-benchmark is not installed": "the bench's redis-benchmark figure",
    "fault tests need PostgreSQL": "the fault suites",
    "initdb and pg_ctl are not installed": "the PostgreSQL outage test",
    "the soak needs PostgreSQL": "the soak",
    "chromium is missing": "the browser tests",
}
"""Reasons that must show up: each proves a tool really was missing and its tests said so."""


@pytest.mark.slow
@pytest.mark.timeout(SECONDS + 60)
def test_the_whole_suite_passes_on_a_machine_without_redis_or_postgresql(tmp_path: Path) -> None:
    why_not = bare_machine.probe(tmp_path / "probe")
    if why_not is not None:
        unavailable(f"cannot make a bare machine here (network, mount and PID namespaces): {why_not}")
    # The figures docs/guarantees.md shows stay those of the real run.
    env = {"FLASHSALE_TEST_RESULTS_DIR": str(tmp_path / "results")}
    # A short base: a test's unix socket path must stay under the OS's 108 bytes, as under /tmp/pytest-of-*.
    with tempfile.TemporaryDirectory(prefix="fs-bare-") as basetemp:
        # make test's own two phases (tests/support/phases.py), as a developer's make test runs them
        pytest_args = [sys.executable, "-m", "tests.support.phases", "-p", "no:cacheprovider", "-q", "-rs"]
        pytest_args += [f"--basetemp={basetemp}", f"--ignore={Path(__file__).relative_to(PROJECT)}"]
        done = subprocess.run(
            bare_machine.command(pytest_args, tmp_path / "bare", env),
            cwd=PROJECT,
            capture_output=True,
            text=True,
            timeout=SECONDS,
            check=False,
        )

    output = done.stdout + done.stderr
    tail = "\n".join(output.splitlines()[-60:])
    assert done.returncode == 0, f"the suite fails on a bare machine (exit {done.returncode}):\n{tail}"
    summary = output.strip().splitlines()[-1]
    assert re.fullmatch(r"tests: [1-9]\d* passed, 0 failed, \d+ skipped", summary), summary
    skips = [line for line in output.splitlines() if line.startswith("SKIPPED")]
    for reason, what in EXPECTED_SKIPS.items():
        assert any(reason in line for line in skips), f"{what} did not skip with '{reason}':\n{tail}"
    for line in skips:  # every skip says why
        assert re.fullmatch(r"SKIPPED \[\d+\] [^:]+:\d+: .{10,}", line), line
