from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

from flashsale.stack.supervisor import ChildSpec, Supervisor, alive, descendants


class Lines(list[str]):
    def __call__(self, source: str, line: str, alert: bool = False) -> None:
        self.append(f"{source} | {line}")


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


async def wait_for(condition: Callable[[], object]) -> None:
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 - polls output collected by a callback
            await asyncio.sleep(0.02)


def test_output_of_each_child_is_prefixed_with_its_name() -> None:
    lines = Lines()

    async def scenario() -> None:
        sup = Supervisor(
            [
                ChildSpec("api", python("print('hello from api', flush=True); import time; time.sleep(30)")),
                ChildSpec("worker", python("print('hello from worker', flush=True); import time; time.sleep(30)")),
            ],
            lines,
        )
        sup.start()
        await wait_for(lambda: sum("hello" in line for line in lines) == 2)
        await sup.stop()

    asyncio.run(scenario())
    assert "api | hello from api" in lines
    assert "worker | hello from worker" in lines


def test_a_child_that_dies_is_restarted_with_backoff_and_announced() -> None:
    lines = Lines()

    async def scenario() -> Supervisor:
        sup = Supervisor([ChildSpec("flaky", python("raise SystemExit(3)"))], lines, backoff_start=0.05)
        sup.start()
        await wait_for(lambda: sup.restarts.get("flaky", 0) >= 3)
        await sup.stop()
        return sup

    asyncio.run(scenario())
    announced = [line for line in lines if "restarting" in line]
    assert announced[0].endswith("flaky exited with code 3; restarting in 0.05s")
    assert announced[1].endswith("restarting in 0.1s")
    assert announced[2].endswith("restarting in 0.2s")


def test_stop_leaves_no_process_behind_even_outside_the_childs_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild"
    # The child starts a grandchild in its own process group (as RQ's work horse does), then waits.
    code = (
        "import os, subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], process_group=0)\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(60)\n"
    )

    async def scenario() -> tuple[int, int]:
        sup = Supervisor([ChildSpec("parent", python(code))], Lines())
        sup.start()
        await wait_for(lambda: pidfile.exists() and pidfile.read_text())
        child = sup.pids()["parent"]
        grandchild = int(pidfile.read_text())
        assert descendants(child) == [grandchild]
        await sup.stop()
        return child, grandchild

    child, grandchild = asyncio.run(scenario())
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(child)
    assert not alive(grandchild)


def test_stop_kills_a_child_that_ignores_sigterm() -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    )
    lines = Lines()

    async def scenario() -> int:
        sup = Supervisor([ChildSpec("stubborn", python(code))], lines, stop_timeout=0.3)
        sup.start()
        await wait_for(lambda: any("ready" in line for line in lines))
        pid = sup.pids()["stubborn"]
        await sup.stop()
        return pid

    pid = asyncio.run(scenario())
    assert not alive(pid)
    assert any("ignored SIGTERM" in line for line in lines)
    assert not any("restarting" in line for line in lines)
