"""The processes a benchmark runs against: a private Redis, the API, the baseline app, a worker."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import redis

from flashsale.stack.private_redis import redis_executable
from flashsale.stack.readiness import free_port, http_answers, redis_answers, wait_until

PROJECT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 30.0


class ServerError(RuntimeError):
    pass


@dataclass
class Process:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def spawn(name: str, args: list[str], log: Path, env: Mapping[str, str] | None = None) -> Process:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            args,
            cwd=PROJECT,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Process(name, process, log)


@contextmanager
def private_redis(directory: Path) -> Iterator[str]:
    """A redis-server of the harness's own, without persistence (it measures the engine, not the disk)."""
    port = free_port()
    args = [redis_executable(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    server = spawn("redis", [*args, "--dir", str(directory)], directory / "redis.log")
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
        outcome = wait_until(
            lambda: redis_answers(client),
            within=START_TIMEOUT,
            poll=0.05,
            exited=lambda: server.process.poll() is not None,
        )
        client.close()
        if outcome != "ready":
            raise ServerError(f"redis-server did not start:\n{server.tail()}")
        yield url
    finally:
        server.stop()


@contextmanager
def private_replica(directory: Path, primary_url: str) -> Iterator[str]:
    """A redis-server of the harness's own replicating ``primary_url`` (no persistence), synced when yielded."""
    primary = urlsplit(primary_url)
    if primary.scheme not in ("redis", "rediss") or not primary.hostname:
        raise ServerError(f"a replica needs a redis:// primary, not {primary_url!r}")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [redis_executable(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--replicaof", primary.hostname, str(primary.port or 6379), "--dir", str(directory)]
    if primary.password:
        args += ["--masterauth", unquote(primary.password)]
    server = spawn("redis-replica", args, directory / "replica.log")
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5)

        def synced() -> bool:
            try:
                return bool(client.info("replication").get("master_link_status") == "up")
            except redis.ConnectionError:
                return False

        outcome = wait_until(synced, within=START_TIMEOUT, poll=0.05, exited=lambda: server.process.poll() is not None)
        client.close()
        if outcome != "ready":
            raise ServerError(f"the replica did not sync with {primary.hostname}:{primary.port}:\n{server.tail()}")
        yield url
    finally:
        server.stop()


def wait_until_live(base_url: str, process: Process) -> None:
    outcome = wait_until(
        lambda: http_answers(f"{base_url}/livez"),
        within=START_TIMEOUT,
        poll=0.1,
        exited=lambda: process.process.poll() is not None,
    )
    if outcome == "exited":
        raise ServerError(f"{process.name} exited with code {process.process.returncode}:\n{process.tail()}")
    if outcome == "timed_out":
        process.stop()
        raise ServerError(f"{process.name} did not answer on {base_url} within {START_TIMEOUT:.0f} s")


@dataclass(frozen=True)
class Served:
    url: str
    pid: int


@contextmanager
def serving(name: str, command: list[str], env: Mapping[str, str], log: Path) -> Iterator[Served]:
    """Start an HTTP server with ``{port}`` filled in ``command``; yield it once /livez answers."""
    port = free_port()
    process = spawn(name, [part.format(port=port) for part in command], log, env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_live(base_url, process)
        yield Served(base_url, process.process.pid)
    finally:
        process.stop()


def flashsale_command(server: str, workers: int = 1) -> list[str]:
    """``flashsale serve`` with ``workers`` worker processes (1: the default of every scenario)."""
    command = [sys.executable, "-m", "flashsale", "serve", "--port", "{port}", "--workers", str(workers)]
    if server != "uvicorn":
        command += ["--server", server]
    return command


def baseline_command() -> list[str]:
    return [sys.executable, "-m", "bench.baselines.pg_row_lock", "--port", "{port}"]


@contextmanager
def worker(env: Mapping[str, str], log: Path) -> Iterator[Process]:
    """``flashsale worker``: drains the outbox while a scenario runs."""
    process = spawn("worker", [sys.executable, "-m", "flashsale", "worker"], log, env)
    try:
        yield process
    finally:
        process.stop()
