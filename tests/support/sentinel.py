"""A primary, its replica and three Redis Sentinels: real ``redis-server`` processes on private ports.

``replicated_redis`` starts them (the replica optionally through a ``Link`` the test can hold and cut) and
waits until the sentinels know the replica and one another, so that a failover can start at once. The
sentinels fail over one second after the primary stops answering (``down-after-milliseconds 1000``).
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from engine.connection import Sentinels
from tests.support.link import Link
from tests.support.replicas import FAST_SYNC, role, start_replica, wait_for_link
from tests.support.servers import RedisServer, free_port, redis_binary, start_redis

SERVICE = "flashsale"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000
"""Sentinel's failover-timeout: how long a failover may take before another is tried."""
QUORUM = 2


@dataclass
class Sentinel:
    port: int
    process: subprocess.Popen[bytes]

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class ReplicatedRedis:
    """One primary (``servers[0]`` at the start), one replica, three sentinels."""

    directory: Path
    servers: list[RedisServer]
    sentinels: list[Sentinel]
    server_args: tuple[str, ...]
    link: Link | None = None
    restarted: list[RedisServer] = field(default_factory=list)

    @property
    def config(self) -> Sentinels:
        return Sentinels(tuple(("127.0.0.1", s.port) for s in self.sentinels), SERVICE)

    @property
    def sentinel_list(self) -> str:
        """The value of FLASHSALE_REDIS_SENTINELS."""
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    @property
    def url(self) -> str:
        """FLASHSALE_REDIS_URL beside the sentinels: only its database number counts."""
        return "redis://sentinel-names-the-primary/0"

    def primary_port(self) -> int | None:
        """The primary's port as a majority of the sentinels name it, or None while they disagree."""
        votes: dict[int, int] = {}
        for sentinel in self.sentinels:
            with contextlib.suppress(redis.RedisError), sentinel.client() as client:
                address = client.sentinel_get_master_addr_by_name(SERVICE)
                if address:
                    votes[int(address[1])] = votes.get(int(address[1]), 0) + 1
        for port, count in votes.items():
            if count >= QUORUM:
                return port
        return None

    def server(self, port: int) -> RedisServer:
        return next(s for s in [*self.restarted, *self.servers] if s.port == port)

    def wait_for_new_primary(self, old_port: int, timeout: float = 30.0) -> int:
        """Wait until the sentinels name another primary, and it says it is one; its port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            port = self.primary_port()
            if port is not None and port != old_port and role(port) == "master":
                return port
            time.sleep(0.1)
        raise AssertionError(f"the sentinels did not promote a replica within {timeout:g}s")

    def restart_as_replica(self, server: RedisServer, primary_port: int) -> RedisServer:
        """Start ``server`` again (empty, same port and directory) as a replica of the primary now."""
        back = start_redis(
            server.directory, *self.server_args, "--replicaof", "127.0.0.1", str(primary_port), port=server.port
        )
        self.restarted.append(back)
        wait_for_link(back.port)
        return back

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        if self.link is not None:
            self.link.close()
        for server in [*self.restarted, *self.servers]:
            server.stop()


def start_sentinel(directory: Path, port: int, primary_port: int, replica_port: int, peers: dict[int, str]) -> Sentinel:
    """A sentinel on ``port`` that already knows the replica and its ``peers`` (port -> id), so that it need not
    wait for their hello messages (every 2 s) before a failover."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "sentinel.conf"
    known = [f"sentinel known-sentinel {SERVICE} 127.0.0.1 {p} {i}" for p, i in peers.items() if p != port]
    config.write_text(
        "\n".join(
            [
                f"port {port}",
                "bind 127.0.0.1",
                f"dir {directory}",
                f"sentinel myid {peers[port]}",
                f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} {QUORUM}",
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
                f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}",
                f"sentinel parallel-syncs {SERVICE} 1",
                f"sentinel known-replica {SERVICE} 127.0.0.1 {replica_port}",
                *known,
                "",
            ]
        )
    )
    process = subprocess.Popen(
        [redis_binary(), str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    sentinel = Sentinel(port, process)
    deadline = time.monotonic() + 10
    while True:
        with contextlib.suppress(redis.RedisError), sentinel.client() as client:
            if client.ping():
                return sentinel
        if process.poll() is not None or time.monotonic() > deadline:
            sentinel.stop()
            raise RuntimeError(f"redis-server --sentinel on port {port} did not start")
        time.sleep(0.05)


def _ready(sentinels: list[Sentinel]) -> bool:
    for sentinel in sentinels:
        try:
            with sentinel.client() as client:
                state = client.sentinel_master(SERVICE)
        except redis.RedisError:
            return False
        if int(state["num-slaves"]) < 1 or int(state["num-other-sentinels"]) < len(sentinels) - 1:
            return False
    return True


@contextlib.contextmanager
def replicated_redis(*server_args: str, link: bool = False) -> Iterator[ReplicatedRedis]:
    """Start the primary, the replica (through a ``Link`` when ``link``) and the sentinels; stop them after."""
    with tempfile.TemporaryDirectory(prefix="fs-sentinel-") as tmp:
        directory = Path(tmp)
        server_args = (*FAST_SYNC, *server_args)
        setup = ReplicatedRedis(directory, [], [], server_args)
        try:
            primary = start_redis(directory / "a", *server_args)
            setup.servers.append(primary)
            upstream = primary.port
            if link:
                setup.link = Link(primary.port).__enter__()
                upstream = setup.link.port
            replica = start_replica(directory / "b", upstream, *server_args)
            setup.servers.append(replica)
            peers = {free_port(): secrets.token_hex(20) for _ in range(3)}
            setup.sentinels = [
                start_sentinel(directory / f"sentinel-{port}", port, primary.port, replica.port, peers)
                for port in peers
            ]
            deadline = time.monotonic() + 30
            while not _ready(setup.sentinels):
                if time.monotonic() > deadline:
                    raise RuntimeError("the sentinels did not find the replica and one another within 30s")
                time.sleep(0.1)
            yield setup
        finally:
            setup.stop()
