"""Real flashsale processes for fault tests: ``serve``, ``worker``, ``scheduler`` and one-shot commands.

Each child runs in its own session with its output in a log file under the test's directory, dies with the
test process, and is stopped (or killed) with its whole process group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from rq import Worker

from flashsale.stack.supervisor import descendants, die_with_parent
from tests.support.api import ADMIN_TOKEN, WEBHOOK_SECRET
from tests.support.servers import free_port
from workers.queues import QUEUE_NAME

FLASHSALE = str(Path(sys.executable).with_name("flashsale"))


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0, poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting until {what}")
        time.sleep(poll)


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class Child:
    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log: Path) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                argv,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL to the child and everything it started: no cleanup runs anywhere."""
        _kill_all([self.pid, *descendants(self.pid)])
        self.process.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        if not self.alive():
            return
        tree = [self.pid, *descendants(self.pid)]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)
        _kill_all(tree)
        self.process.wait(10)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Api(Child):
    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log: Path, port: int) -> None:
        super().__init__(name, argv, env, log)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        with httpx.Client(timeout=1.0) as http:

            def answers() -> bool:
                assert self.alive(), f"{self.name} exited:\n{self.tail()}"
                try:
                    return http.get(self.url + "/livez").status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(answers, f"{self.name} answers on {self.url}", timeout)


@dataclass
class Stack:
    """The environment shared by every child, and the children started so far (stopped by ``close``)."""

    directory: Path
    redis_url: str
    queue_url: str
    database_url: str
    env_extra: dict[str, str] = field(default_factory=dict)
    children: list[Child] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.update(
            {
                "FLASHSALE_REDIS_URL": self.redis_url,
                "FLASHSALE_QUEUE_REDIS_URL": self.queue_url,
                "FLASHSALE_DATABASE_URL": self.database_url,
                "FLASHSALE_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "FLASHSALE_ADMIN_TOKEN": ADMIN_TOKEN,
                "FLASHSALE_LOG_FORMAT": "json",
                "FLASHSALE_VAR_DIR": str(self.directory / "var"),
                "FLASHSALE_HOLD_TTL_SECONDS": "2",
                "FLASHSALE_ORDER_TTL_SECONDS": "3",
                "FLASHSALE_REAPER_INTERVAL_SECONDS": "1",
                "FLASHSALE_DRAIN_INTERVAL_SECONDS": "1",
                "PYTHONUNBUFFERED": "1",
                **self.env_extra,
                **extra,
            }
        )
        return env

    def _log(self, name: str) -> Path:
        return self.directory / f"{name}.log"

    def api(self, *, port: int | None = None, workers: int = 1, name: str = "api", wait: bool = True) -> Api:
        port = port or free_port()
        argv = [FLASHSALE, "serve", "--port", str(port), "--workers", str(workers)]
        api = Api(name, argv, self.env(), self._log(name), port)
        self.children.append(api)
        if wait:
            api.wait_ready()
        return api

    def restart_api(self, api: Api) -> Api:
        """A new process serving on the same port (uvicorn binds with SO_REUSEADDR)."""
        workers = api.argv[api.argv.index("--workers") + 1]
        return self.api(port=api.port, workers=int(workers), name=api.name)

    def worker(self, name: str = "worker") -> Child:
        child = Child(name, [FLASHSALE, "worker"], self.env(), self._log(name))
        self.children.append(child)
        return child

    def scheduler(self) -> Child:
        child = Child("scheduler", [FLASHSALE, "scheduler"], self.env(), self._log("scheduler"))
        self.children.append(child)
        return child

    def run(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [FLASHSALE, *args], env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )

    def busy_worker(self, child: Child) -> bool:
        """Whether ``child`` (an RQ worker) is running a job right now."""
        connection = redis.Redis.from_url(self.queue_url)
        try:
            return any(
                w.pid == child.pid and w.get_state() == "busy"
                for w in Worker.all(connection=connection)
                if QUEUE_NAME in w.queue_names()
            )
        finally:
            connection.close()

    def close(self) -> None:
        for child in reversed(self.children):
            child.stop()

    def logs(self) -> dict[str, Any]:
        return {child.name: child.tail(20) for child in self.children}
