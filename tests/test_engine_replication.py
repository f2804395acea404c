"""Replicated acknowledgement (engine.replication) against a real primary and replica.

The replica replicates through a ``Link`` the test can hold: held, the primary still takes every write but
no replica confirms it, as when the replica falls behind over a slow network.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest
import redis
from redis.crc import key_slot

from engine import AsyncEngine, Engine
from engine.connection import connect, connect_async
from engine.exceptions import EngineUnavailable, NotReplicated
from engine.keys import product_keys
from engine.replication import Acknowledgement, hash_tag, marker_key
from tests.conftest import started
from tests.support.replicas import ReplicaPair, replica_pair

ACK = Acknowledgement(1, 300)
"""For writes the test expects no replica to confirm (the link held): how long they wait before answering."""
PATIENT = Acknowledgement(1, 30_000)
"""For writes a healthy replica confirms: WAIT returns as soon as it has them, however busy the machine."""


@pytest.fixture(scope="module")
def pair() -> Iterator[ReplicaPair]:
    yield from started(replica_pair(), "a primary and its replica")


@pytest.fixture
def primary(pair: ReplicaPair) -> Iterator[redis.Redis]:
    pair.link.release()
    client = redis.Redis(port=pair.primary.port)
    client.flushall()
    pair.wait_caught_up()
    yield client
    pair.link.release()
    client.close()


@pytest.fixture
def replica(pair: ReplicaPair) -> Iterator[redis.Redis]:
    client = redis.Redis(port=pair.replica.port)
    yield client
    client.close()


@pytest.fixture
def engine(pair: ReplicaPair, primary: redis.Redis) -> Iterator[Engine]:
    client = connect(pair.primary.url, socket_timeout=5)
    Engine(client, ack=PATIENT).set_stock(1, 100)
    yield Engine(client, ack=ACK)
    client.close()


def patient(engine: Engine) -> Engine:
    """The same client, waiting as long as a healthy replica needs."""
    return Engine(engine.redis, ack=PATIENT)


def waits(client: redis.Redis) -> int:
    """WAIT commands the server has run so far."""
    return int(client.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))


def test_an_acknowledged_write_is_on_the_replica_when_it_is_answered(
    pair: ReplicaPair, primary: redis.Redis, replica: redis.Redis
) -> None:
    patient = Engine(primary, ack=Acknowledgement(1, 10_000))
    # Given a replica that lags: the link passes nothing on for a tenth of a second
    pair.link.hold()
    threading.Timer(0.1, pair.link.release).start()
    # When a product is put on sale and a hold taken, each is answered only once the replica has it
    patient.set_stock(1, 10)
    assert replica.sismember("fs:products", "1"), "the product's listing was answered before the replica had it"
    pair.link.hold()
    threading.Timer(0.1, pair.link.release).start()
    hold = patient.reserve(1, 2, customer_id="c1")
    assert replica.hexists(product_keys(1).holds, hold.hold_id.split("_")[1]), "answered before the replica had it"


def test_a_write_no_replica_confirms_answers_not_replicated(engine: Engine, pair: ReplicaPair) -> None:
    pair.link.hold()
    with pytest.raises(NotReplicated) as refused:
        engine.reserve(1, 1, customer_id="c1", idempotency_key="k1")
    assert (refused.value.code, refused.value.wanted, refused.value.confirmed) == ("not_replicated", 1, 0)


def test_a_retry_with_the_same_key_replays_once_replicated_and_not_before(engine: Engine, pair: ReplicaPair) -> None:
    # Given a hold the primary took but no replica confirmed
    pair.link.hold()
    with pytest.raises(NotReplicated):
        engine.reserve(1, 1, customer_id="c1", idempotency_key="k1")
    # When it is retried while the replica still lacks it: the replay is not answered either
    with pytest.raises(NotReplicated):
        engine.reserve(1, 1, customer_id="c1", idempotency_key="k1")
    # Then, the replica caught up, the retry replays the first hold: one hold, one unit taken
    pair.link.release()
    first = patient(engine).reserve(1, 1, customer_id="c1", idempotency_key="k1")
    again = patient(engine).reserve(1, 1, customer_id="c1", idempotency_key="k1")
    assert first.hold_id == again.hold_id
    assert engine.snapshot(1).held == 1


def test_every_kind_of_write_waits_for_the_replica(engine: Engine, pair: ReplicaPair, primary: redis.Redis) -> None:
    healthy = patient(engine)
    released = healthy.reserve(1, 1, customer_id="c1")
    converted = healthy.reserve(1, 1, customer_id="c2")
    cancelled = healthy.convert(healthy.reserve(1, 1, customer_id="c3").hold_id)
    paid = healthy.convert(healthy.reserve(1, 1, customer_id="c4").hold_id)
    pair.link.hold()
    writes: dict[str, Callable[[], object]] = {
        "reserve": lambda: engine.reserve(1, 1),
        "release": lambda: engine.release(released.hold_id),
        "convert": lambda: engine.convert(converted.hold_id),
        "cancel": lambda: engine.cancel(cancelled.order_id),
        "claim": lambda: engine.claim_transaction("t-1", paid.order_id),
        "settle": lambda: engine.settle(paid.order_id, "t-1", "success"),
        "set_stock": lambda: engine.set_stock(1, 120),
        "reap": lambda: engine.reap(1),
        "outbox read (the drain)": lambda: engine.read_outbox(1),
    }
    unconfirmed = []
    for name, write in writes.items():
        try:
            write()
        except NotReplicated:
            unconfirmed.append(name)
    assert unconfirmed == list(writes)
    # Reads are answered at once, without waiting for the replicas.
    assert engine.hold(released.hold_id).status == "released"
    assert engine.order(cancelled.order_id).status == "cancelled"
    assert engine.snapshot(1).total == 120


def test_a_write_a_primary_refuses_for_want_of_replicas_answers_not_replicated(
    pair: ReplicaPair, primary: redis.Redis
) -> None:
    engine = Engine(primary)  # no acknowledgement asked for: the server's own fence (min-replicas-to-write)
    engine.set_stock(1, 10)
    primary.config_set("min-replicas-to-write", 2)
    try:
        with pytest.raises(NotReplicated) as refused:
            engine.reserve(1, 1)
        assert "NOREPLICAS" in str(refused.value)
    finally:
        primary.config_set("min-replicas-to-write", 0)


def test_a_write_sent_to_a_replica_answers_engine_unavailable(engine: Engine, replica: redis.Redis) -> None:
    # Given product 1 on the replica too (``engine`` puts it, replicated): the reserve gets as far as a write
    with pytest.raises(EngineUnavailable) as refused:
        Engine(replica).reserve(1, 1)  # a client still on a primary that a failover demoted
    assert refused.value.code == "engine_unavailable"


def test_one_wait_covers_a_coalesced_batch(pair: ReplicaPair, primary: redis.Redis) -> None:
    async def run() -> int:
        client = connect_async(pair.primary.url, socket_timeout=None)
        engine = AsyncEngine(client, ack=PATIENT, timeout=60)
        await engine.set_stock(1, 1000)
        before = waits(primary)
        holds = await asyncio.gather(*(engine.reserve(1, 1, customer_id=f"c{i}") for i in range(200)))
        assert len({hold.hold_id for hold in holds}) == 200
        await client.aclose()
        await client.connection_pool.disconnect()
        return waits(primary) - before

    trips = asyncio.run(run())
    assert 0 < trips < 200 / 4, f"{trips} WAITs for 200 reserves: one per batch was expected"


def test_one_wait_covers_a_pipelined_round_trip(pair: ReplicaPair, primary: redis.Redis) -> None:
    async def run() -> int:
        client = connect_async(pair.primary.url, socket_timeout=None)
        engine = AsyncEngine(client, ack=PATIENT, timeout=60, coalesce=1)
        for product_id in range(1, 101):
            await engine.set_stock(product_id, 10)
        before = waits(primary)
        holds = await asyncio.gather(*(engine.reserve(product_id, 1) for product_id in range(1, 101)))
        assert len(holds) == 100
        await client.aclose()
        await client.connection_pool.disconnect()
        return waits(primary) - before

    trips = asyncio.run(run())
    assert 0 < trips < 100 / 4, f"{trips} WAITs for 100 calls: one per round trip was expected"


def test_the_async_engine_answers_not_replicated_for_every_call_of_an_unconfirmed_trip(
    pair: ReplicaPair, primary: redis.Redis
) -> None:
    async def run() -> list[BaseException | object]:
        client = connect_async(pair.primary.url, socket_timeout=None)
        healthy = AsyncEngine(client, ack=PATIENT, timeout=60)
        for product_id in (1, 2, 3):
            await healthy.set_stock(product_id, 10)
        engine = AsyncEngine(client, ack=ACK, timeout=5)
        pair.link.hold()
        try:
            return await asyncio.gather(
                *(engine.reserve(product_id, 1) for product_id in (1, 2, 3) for _ in range(5)),
                return_exceptions=True,
            )
        finally:
            pair.link.release()
            await client.aclose()
            await client.connection_pool.disconnect()

    outcomes = asyncio.run(run())
    assert all(isinstance(outcome, NotReplicated) for outcome in outcomes), outcomes


def test_the_marker_is_written_in_the_slot_of_the_trip(pair: ReplicaPair) -> None:
    assert hash_tag(product_keys(7).orders) == "7"
    assert marker_key(product_keys(7).orders) == "fs:{7}:acked"
    assert marker_key("fs:txn:{abc}") == "fs:{abc}:acked"
    assert marker_key("fs:products") == "fs:{fs:products}:acked"
    assert key_slot(marker_key("fs:products").encode()) == key_slot(b"fs:products")
    assert key_slot(marker_key("fs:txn:{a%7Bb}").encode()) == key_slot(b"fs:txn:{a%7Bb}")
    assert hash_tag("fs:{}:x") is None


def test_after_script_flush_an_acknowledged_write_loads_its_script_and_is_answered_once_replicated(
    pair: ReplicaPair, engine: Engine, primary: redis.Redis, replica: redis.Redis
) -> None:
    async def reserve_async() -> str:
        client = connect_async(pair.primary.url, socket_timeout=None)
        try:
            await client.script_flush()
            return (await AsyncEngine(client, ack=PATIENT, timeout=60).reserve(1, 1)).hold_id
        finally:
            await client.aclose()
            await client.connection_pool.disconnect()

    primary.script_flush()
    sync_hold = patient(engine).reserve(1, 1).hold_id
    async_hold = asyncio.run(reserve_async())

    on_replica = {f"h1_{ulid.decode()}" for ulid in replica.hkeys(product_keys(1).holds)}  # field: the hold's ULID
    assert {sync_hold, async_hold} <= on_replica
