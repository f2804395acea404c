"""engine.connection: clients of the primary that Redis Sentinel names, following it through a failover."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis

from engine import AsyncEngine, Engine
from engine.connection import Sentinels, connect, connect_async
from tests.conftest import started
from tests.support.replicas import wait_caught_up
from tests.support.sentinel import ReplicatedRedis, replicated_redis


@pytest.fixture
def setup() -> Iterator[ReplicatedRedis]:
    yield from started(replicated_redis(), "a primary, a replica and three sentinels")


def failover(setup: ReplicatedRedis) -> tuple[int, int]:
    """SIGKILL the primary once its replica has caught up (else the kill may lose the last writes, as tested in
    tests/faults), and wait until the sentinels promote the replica; (old port, new port)."""
    old = setup.primary_port()
    assert old is not None
    replica = next(server for server in setup.servers if server.port != old)
    wait_caught_up(old, replica.port)
    setup.server(old).process.kill()
    return old, setup.wait_for_new_primary(old)


def test_clients_reach_the_primary_sentinel_names_and_follow_it_after_a_failover(setup: ReplicatedRedis) -> None:
    engine = Engine(connect(setup.url, sentinels=setup.config, socket_timeout=2, pool_timeout=2))

    async def hold_async() -> str:
        client = connect_async(setup.url, sentinels=setup.config, socket_timeout=None)
        try:
            return (await AsyncEngine(client, timeout=5).reserve(1, 1)).hold_id
        finally:
            await client.aclose()
            await client.connection_pool.disconnect()

    engine.set_stock(1, 10)
    engine.reserve(1, 1)
    old, new = failover(setup)
    # The same clients, never restarted: the first call after the switch may meet the dead primary's connection.
    for attempt in range(50):
        try:
            engine.reserve(1, 1)
            break
        except Exception:
            if attempt == 49:
                raise
    asyncio.run(hold_async())
    with redis.Redis(port=new) as primary:
        assert primary.info("replication")["role"] == "master"
        held = Engine(primary).snapshot(1).held
        assert held == 3, f"{held} holds on the new primary"
    assert old != new
    engine.redis.close()


def test_the_url_beside_the_sentinels_chooses_the_database(setup: ReplicatedRedis) -> None:
    client = connect("redis://ignored:1/3", sentinels=setup.config)
    client.set("where", "db 3")
    client.close()
    port = setup.primary_port()
    with redis.Redis(port=port, db=3) as three, redis.Redis(port=port, db=0) as zero:
        assert three.get("where") == b"db 3"
        assert zero.get("where") is None


def test_no_sentinel_answering_is_engine_unavailable_not_a_hang() -> None:
    from engine.exceptions import EngineUnavailable

    nobody = Sentinels((("127.0.0.1", 1),))  # nothing listens on port 1
    engine = Engine(connect("redis://x/0", sentinels=nobody, socket_timeout=1, pool_timeout=1))
    with pytest.raises(EngineUnavailable):
        engine.snapshot(1)
    engine.redis.close()


def test_sentinels_are_refused_with_a_cluster_or_a_unix_socket() -> None:
    sentinels = Sentinels((("127.0.0.1", 26379),))
    with pytest.raises(ValueError, match="Cluster"):
        connect("redis://127.0.0.1:7000/0", cluster=True, sentinels=sentinels)
    with pytest.raises(ValueError, match="unix"):
        connect("unix:///tmp/redis.sock", sentinels=sentinels)
    with pytest.raises(ValueError, match="at least one"):
        Sentinels(())
    assert Sentinels.of(()) is None
    assert Sentinels.of([("h", 1)], "svc") == Sentinels((("h", 1),), "svc")
