"""``make test`` in two phases: the tests that may share the machine in parallel, then those that must run alone.

``python -m tests.support.phases [pytest arguments]`` runs pytest twice with the same arguments:

1. ``--phase=parallel``: every test not marked ``serial``, spread over ``PYTEST_WORKERS`` pytest-xdist worker
   processes (4 by default; most tests wait on Redis, PostgreSQL or a subprocess, so more workers than cores
   pay). Each worker leases its own Redis database and creates its own PostgreSQL database
   (``tests/support/isolation.py``).
2. ``--phase=serial``: the tests marked ``serial`` (every test marked ``slow``: fault injection, soak, bench,
   browser, the bare-machine rerun), one at a time, with nothing else of the run beside them, so that what they
   measure or kill is not disturbed by the run's own load.

It ends with one line for the whole run, ``tests: N passed, N failed, N skipped``, and exits non-zero if either
phase failed. A phase that selects no test (``PYTEST_ARGS`` naming one file) counts as passed; a run where
neither selects any exits 5, as pytest does.

As a pytest plugin (loaded by ``tests/conftest.py``) it adds ``--phase`` and the ``serial`` marker's meaning.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

PHASES = ("parallel", "serial")
WORKERS = os.environ.get("PYTEST_WORKERS", "4")
"""pytest-xdist workers of the parallel phase (a number, or ``auto`` for one per core)."""
TALLY_ENV = "FLASHSALE_TEST_TALLY"
"""Where a phase writes its counts for the runner (a JSON file)."""
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")


def runs_alone(item: pytest.Item) -> bool:
    """Tests marked ``serial``, and every ``slow`` one: a slow test measures, kills or loads, unless it says
    otherwise with ``serial(False)``."""
    marker = item.get_closest_marker("serial")
    if marker is not None:
        return bool(marker.args[0]) if marker.args else True
    return item.get_closest_marker("slow") is not None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--phase",
        choices=PHASES,
        default=None,
        help="run only the tests of one phase of make test: parallel (may share the machine) or serial (alone)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    phase = config.getoption("--phase")
    if phase is None:
        return
    keep = [item for item in items if runs_alone(item) == (phase == "serial")]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    # The longest tests first: started last, one would end the parallel phase alone (the sort is stable).
    items[:] = sorted(keep, key=lambda item: item.get_closest_marker("early") is None)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.config.getoption("--phase") is not None and exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.OK  # the other phase may hold the tests asked for; the runner decides


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    path = os.environ.get(TALLY_ENV)
    if path and not os.environ.get("PYTEST_XDIST_WORKER"):
        tally = {outcome: len(terminalreporter.stats.get(outcome, [])) for outcome in OUTCOMES}
        Path(path).write_text(json.dumps(tally))


def run_phase(phase: str, args: list[str], tally: Path) -> tuple[int, dict[str, int], float]:
    """(exit status, counts, seconds) of one phase."""
    command = [sys.executable, "-m", "pytest", f"--phase={phase}"]
    if phase == "parallel":
        command += ["-n", WORKERS]
    started = time.monotonic()
    done = subprocess.run([*command, *args], env={**os.environ, TALLY_ENV: str(tally)}, check=False)
    counts = json.loads(tally.read_text()) if tally.exists() else {}
    return done.returncode, counts, time.monotonic() - started


def main(args: list[str]) -> int:
    statuses: list[int] = []
    total = dict.fromkeys(OUTCOMES, 0)
    lines = []
    with tempfile.TemporaryDirectory(prefix="fs-phases-") as tmp:
        for phase in PHASES:
            status, counts, seconds = run_phase(phase, args, Path(tmp) / f"{phase}.json")
            statuses.append(status)
            for outcome, n in counts.items():
                total[outcome] += n
            ran = sum(counts.values())
            workers = f", {WORKERS} workers" if phase == "parallel" else ""
            lines.append(f"{phase} phase: {ran} tests in {seconds:.0f} s{workers} (exit {status})")
    print("\n".join(lines))
    failed = total["failed"] + total["error"] + total["xpassed"]
    print(f"tests: {total['passed'] + total['xfailed']} passed, {failed} failed, {total['skipped']} skipped")
    if any(status != 0 for status in statuses):
        return next(status for status in statuses if status != 0)
    if not sum(total.values()):
        return int(pytest.ExitCode.NO_TESTS_COLLECTED)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
