"""Keys for Redis Cluster, and crafted ids refused before any key is built."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from engine import Engine, calls, new_id, product_keys
from engine.connection import connect
from engine.exceptions import InvalidId
from engine.ids import MAX_PRODUCT_ID

ULID = "01JD0Z3N5W8YQ2T4V6X8Z0A1B2"
CRAFTED_HOLD_IDS: list[Any] = [
    "",
    "h",
    "h1_",
    f"h1_{ULID[:-1]}",
    f"h1_{ULID}0",
    f"h01_{ULID}",
    f"h0_{ULID}",
    f"h-1_{ULID}",
    f"H1_{ULID}",
    f"h1_{ULID.lower()}",
    f"h1_{ULID}\n",
    f" h1_{ULID}",
    f"h1_{ULID[:-1]}U",
    f"h{{1}}_{ULID}",
    f"h1_{{2}}{ULID[3:]}",
    f"h1_{ULID[:-2]}*?",
    f"h{MAX_PRODUCT_ID + 1}_{ULID}",
    f"h\uff11_{ULID}",  # a full-width digit
    f"h1_{ULID}\x00",
    f"o1_{ULID}",  # an order id where a hold id belongs
    None,
    12,
    f"h1_{ULID}".encode(),
]
CRAFTED_ORDER_IDS: list[Any] = [
    (value.replace("h", "o", 1) if isinstance(value, str) and value.startswith("h") else value)
    for value in CRAFTED_HOLD_IDS
    if value != f"o1_{ULID}"
] + [f"h1_{ULID}"]
BAD_PRODUCT_IDS: list[Any] = [0, -1, MAX_PRODUCT_ID + 1, True, 1.0, "1", None]


@pytest.mark.parametrize("product_id", [1, 42, 7_000_001, MAX_PRODUCT_ID])
def test_every_key_of_a_product_hashes_to_one_slot(product_id: int) -> None:
    keys = product_keys(product_id).all()

    assert len(keys) == len(set(keys)) == 16
    assert all(key.startswith(f"fs:{{{product_id}}}:") for key in keys)
    assert len({key_slot(key.encode()) for key in keys}) == 1


def test_the_cluster_puts_every_key_of_a_product_in_one_slot(cluster_url: str) -> None:
    node = redis.Redis.from_url(cluster_url)
    try:
        for product_id in (1, 2, 3, 42, 1_000):
            keys = product_keys(product_id).all()
            slots = {node.execute_command("CLUSTER KEYSLOT", key) for key in keys}
            assert slots == {key_slot(keys[0].encode())}
    finally:
        node.close()


def test_products_spread_over_the_cluster_and_each_stays_on_one_node(cluster_url: str) -> None:
    client = connect(cluster_url, cluster=True)
    client.flushdb(target_nodes=RedisCluster.PRIMARIES)
    engine = Engine(client)
    owners = set()
    try:
        for product_id in range(1, 13):
            engine.set_stock(product_id, 5)
            engine.convert(engine.reserve(product_id, 1).hold_id)
            keys = product_keys(product_id)
            nodes = {client.get_node_from_key(key).name for key in (keys.product, keys.orders, keys.outbox)}
            assert len(nodes) == 1
            owners |= nodes
            assert engine.snapshot(product_id).pending == 1
        assert len(owners) > 1
    finally:
        client.flushdb(target_nodes=RedisCluster.PRIMARIES)
        client.close()


@pytest.fixture
def key_spy(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Records every product whose keys the engine builds."""
    built: list[object] = []
    real = calls.product_keys

    def spy(product_id: int) -> Any:
        built.append(product_id)
        return real(product_id)

    monkeypatch.setattr(calls, "product_keys", spy)
    return built


HOLD_CALLS: dict[str, Callable[[Engine, Any], object]] = {
    "release": lambda e, v: e.release(v),
    "hold": lambda e, v: e.hold(v),
    "convert": lambda e, v: e.convert(v),
    "reserve": lambda e, v: e.reserve(1, 1, hold_id=v),
}
ORDER_CALLS: dict[str, Callable[[Engine, Any], object]] = {
    "convert": lambda e, v: e.convert(new_id("hold", 1), order_id=v),
    "settle": lambda e, v: e.settle(v, "txn-1", "success"),
    "cancel": lambda e, v: e.cancel(v),
    "order": lambda e, v: e.order(v),
}
PRODUCT_CALLS: dict[str, Callable[[Engine, Any], object]] = {
    "set_stock": lambda e, v: e.set_stock(v, 10),
    "reserve": lambda e, v: e.reserve(v, 1),
    "snapshot": lambda e, v: e.snapshot(v),
    "reap": lambda e, v: e.reap(v),
    "read_outbox": lambda e, v: e.read_outbox(v),
    "stats": lambda e, v: e.stats(v),
}


def keyspace(client: Any) -> list[bytes]:
    return sorted(client.keys("*"))


@pytest.mark.parametrize("method", HOLD_CALLS)
def test_crafted_hold_ids_are_refused_before_any_key_is_built(
    engine: Engine, redis_client: Any, key_spy: list[object], method: str
) -> None:
    engine.set_stock(1, 10)
    before, key_spy[:] = keyspace(redis_client), []

    for value in CRAFTED_HOLD_IDS:
        if value is None and method == "reserve":
            continue  # no hold id: the engine makes one
        with pytest.raises(InvalidId) as refused:
            HOLD_CALLS[method](engine, value)
        assert (refused.value.code, refused.value.kind) == ("invalid_id", "hold"), value

    assert set(key_spy) <= {1}  # reserve builds product 1's keys first, never a crafted id's
    assert keyspace(redis_client) == before


@pytest.mark.parametrize("method", ORDER_CALLS)
def test_crafted_order_ids_are_refused_before_any_key_is_built(
    engine: Engine, redis_client: Any, key_spy: list[object], method: str
) -> None:
    engine.set_stock(1, 10)
    before, key_spy[:] = keyspace(redis_client), []

    for value in CRAFTED_ORDER_IDS:
        if value is None and method == "convert":
            continue  # no order id: the engine makes one
        with pytest.raises(InvalidId) as refused:
            ORDER_CALLS[method](engine, value)
        assert refused.value.kind == "order", value

    assert key_spy == []
    assert keyspace(redis_client) == before


@pytest.mark.parametrize("method", PRODUCT_CALLS)
def test_bad_product_ids_are_refused_before_any_key_is_built(engine: Engine, redis_client: Any, method: str) -> None:
    for value in BAD_PRODUCT_IDS:
        with pytest.raises(InvalidId) as refused:
            PRODUCT_CALLS[method](engine, value)
        assert refused.value.kind == "product", value

    assert keyspace(redis_client) == []


def test_ids_of_one_product_cannot_reach_another(engine: Engine) -> None:
    engine.set_stock(1, 10)
    engine.set_stock(2, 10)
    hold = engine.reserve(1, 1)

    with pytest.raises(InvalidId):
        engine.convert(hold.hold_id, order_id=new_id("order", 2))
    with pytest.raises(InvalidId):
        engine.reserve(2, 1, hold_id=hold.hold_id)
    assert engine.snapshot(2).held == 0


def test_a_scoped_idempotency_key_keeps_every_caller_and_key_apart() -> None:
    pairs = [("alice", "cart"), ("alic", "ecart"), ("", "alicecart"), ("alicecart", ""), ("bob", "cart"), ("", "cart")]
    pairs += [("1:a", "b"), ("1", ":ab"), ("x" * 128, "k" * 128)]

    fields = [calls.scoped_idempotency_key(scope, key) for scope, key in pairs]

    assert len(set(fields)) == len(pairs)
    assert fields == [calls.scoped_idempotency_key(scope, key) for scope, key in pairs]  # the same every time
    assert {len(field) for field in fields} == {22}
