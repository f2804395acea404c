"""A primary and its replica, real ``redis-server`` processes, the replica behind a ``Link`` the test controls."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.support.link import Link
from tests.support.servers import RedisServer, start_redis

FAST_SYNC = ("--repl-diskless-sync-delay", "0")
"""A replica's first sync starts at once (Redis waits 5 s by default for more replicas to share it)."""


@dataclass
class ReplicaPair:
    primary: RedisServer
    replica: RedisServer
    link: Link

    def wait_caught_up(self, timeout: float = 10.0) -> None:
        wait_caught_up(self.primary.port, self.replica.port, timeout)


def wait_caught_up(primary_port: int, replica_port: int, timeout: float = 10.0) -> None:
    """Wait until the replica has everything the primary has written so far."""
    deadline = time.monotonic() + timeout
    with (
        redis.Redis(port=primary_port, socket_timeout=2) as primary,
        redis.Redis(port=replica_port, socket_timeout=2) as replica,
    ):
        written = primary.info("replication")["master_repl_offset"]
        while replica.info("replication")["slave_repl_offset"] < written:
            if time.monotonic() > deadline:
                raise AssertionError(f"the replica did not catch up within {timeout:g}s")
            time.sleep(0.02)


def role(port: int) -> str | None:
    try:
        with redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1) as client:
            return str(client.info("replication")["role"])
    except redis.RedisError:
        return None


def wait_for_link(replica_port: int, timeout: float = 20.0) -> None:
    """Wait until the replica on ``replica_port`` has finished its first sync with its primary."""
    deadline = time.monotonic() + timeout
    with redis.Redis(port=replica_port, socket_timeout=1) as client:
        while client.info("replication").get("master_link_status") != "up":
            if time.monotonic() > deadline:
                raise RuntimeError(f"the replica on port {replica_port} did not sync within {timeout:g}s")
            time.sleep(0.05)


def start_replica(directory: Path, primary_port: int, *server_args: str) -> RedisServer:
    replica = start_redis(directory, *FAST_SYNC, *server_args, "--replicaof", "127.0.0.1", str(primary_port))
    wait_for_link(replica.port)
    return replica


@contextlib.contextmanager
def replica_pair(*server_args: str) -> Iterator[ReplicaPair]:
    """A primary and one replica that replicates through a ``Link``; all stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix="fs-replicas-") as tmp, contextlib.ExitStack() as stack:
        primary = start_redis(Path(tmp) / "primary", *FAST_SYNC, *server_args)
        stack.callback(primary.stop)
        link = stack.enter_context(Link(primary.port))
        replica = start_replica(Path(tmp) / "replica", link.port, *server_args)
        stack.callback(replica.stop)
        yield ReplicaPair(primary, replica, link)
