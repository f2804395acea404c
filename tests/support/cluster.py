"""A Redis Cluster of three primaries, each with one replica: real ``redis-server`` processes on private ports.

A primary that stops answering is failed over by its replica after ``NODE_TIMEOUT_MS`` (one second here;
fifteen by default in Redis). Started again on its port and directory, a killed node reads its nodes.conf
and rejoins as a replica of whoever took its slots.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.support.replicas import FAST_SYNC, wait_for_link
from tests.support.servers import RedisServer, free_cluster_port, redis_binary, start_redis

NODE_TIMEOUT_MS = 1000


@dataclass
class ReplicatedCluster:
    directory: Path
    servers: list[RedisServer]
    restarted: list[RedisServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.servers[0].url

    def args(self, port: int) -> tuple[str, ...]:
        return (
            *FAST_SYNC,
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            f"nodes-{port}.conf",
            "--cluster-node-timeout",
            str(NODE_TIMEOUT_MS),
        )

    def live(self) -> list[RedisServer]:
        by_port = {server.port: server for server in [*self.servers, *self.restarted]}
        return [server for server in by_port.values() if server.process.poll() is None]

    def primary_of(self, key: str) -> int:
        """The port of the node that serves ``key``'s slot now, as a live node sees the cluster."""
        slot = int(self._any().execute_command("CLUSTER KEYSLOT", key))
        for start, end, primary, *_ in self._any().execute_command("CLUSTER SLOTS"):
            if start <= slot <= end:
                return int(primary[1])
        raise AssertionError(f"no node serves slot {slot}")

    def _any(self) -> redis.Redis:
        return redis.Redis(port=self.live()[0].port, socket_timeout=2, decode_responses=False)

    def server(self, port: int) -> RedisServer:
        return next(s for s in reversed([*self.servers, *self.restarted]) if s.port == port)

    def wait_for_new_primary(self, key: str, old_port: int, timeout: float = 30.0) -> int:
        """Wait until the cluster serves ``key``'s slot from another node and reports itself healthy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                port = self.primary_of(key)
                if port != old_port and healthy(port):
                    return port
            time.sleep(0.1)
        raise AssertionError(f"the cluster did not promote a replica within {timeout:g}s")

    def restart(self, server: RedisServer) -> RedisServer:
        """Start a killed node again on its port and directory: it rejoins as a replica, and is synced."""
        back = start_redis(server.directory, *self.args(server.port), port=server.port)
        self.restarted.append(back)
        deadline = time.monotonic() + 30
        with redis.Redis(port=back.port, socket_timeout=2) as client:
            while client.info("replication")["role"] != "slave":
                if time.monotonic() > deadline:
                    raise AssertionError("the restarted node did not rejoin as a replica")
                time.sleep(0.1)
        wait_for_link(back.port)
        return back

    def stop(self) -> None:
        for server in [*self.restarted, *self.servers]:
            server.stop()


def healthy(port: int) -> bool:
    try:
        with redis.Redis(port=port, socket_timeout=1) as client:
            return bool(client.execute_command("CLUSTER INFO").get("cluster_state") == "ok")
    except redis.RedisError:
        return False


@contextlib.contextmanager
def replicated_cluster(primaries: int = 3) -> Iterator[ReplicatedCluster]:
    """``primaries`` primaries and as many replicas, created with ``redis-cli --cluster create``."""
    with tempfile.TemporaryDirectory(prefix="fs-cluster-replicas-") as tmp:
        cluster = ReplicatedCluster(Path(tmp), [])
        try:
            for i in range(2 * primaries):
                port = free_cluster_port()
                cluster.servers.append(start_redis(Path(tmp) / str(i), *cluster.args(port), port=port))
            nodes = [f"127.0.0.1:{s.port}" for s in cluster.servers]
            subprocess.run(
                [redis_binary("redis-cli"), "--cluster", "create", *nodes, "--cluster-replicas", "1", "--cluster-yes"],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                timeout=60,
            )
            deadline = time.monotonic() + 30
            for server in cluster.servers:
                while not healthy(server.port):
                    if time.monotonic() > deadline:
                        raise RuntimeError("the test cluster did not reach cluster_state:ok")
                    time.sleep(0.1)
                with redis.Redis(port=server.port, socket_timeout=2) as client:
                    if client.info("replication")["role"] == "slave":
                        wait_for_link(server.port)
            yield cluster
        finally:
            cluster.stop()
