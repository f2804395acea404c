"""Contract of set_stock, reserve and snapshot, on fakeredis, real Redis and a Redis Cluster."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from engine import Engine, new_id, parse_id
from engine.exceptions import (
    InvalidId,
    LimitExceeded,
    OutOfStock,
    ProductNotFound,
    SaleNotActive,
    StockBelowCommitted,
)
from engine.keys import product_keys
from engine.product_rules import MAX_QUANTITY
from engine.types import StockChange

MakeEngine = Callable[..., Engine]


def wall_ms() -> int:
    return int(time.time() * 1000)


def sleep_past(instant_ms: int) -> None:
    """Sleep until just after ``instant_ms``; the test servers share this machine's clock."""
    time.sleep(max(0.0, instant_ms / 1000 - time.time()) + 0.01)


def counters(engine: Engine, product_id: int = 1) -> tuple[int, int, int, int, int]:
    s = engine.snapshot(product_id)
    assert s.consistent
    return s.total, s.available, s.held, s.pending, s.sold


def test_set_stock_creates_a_product_with_every_unit_available(engine: Engine) -> None:
    change = engine.set_stock(1, 10, price_cents=250, max_per_customer=3)

    assert change == StockChange(1, True, 10, 10, 0, 0, 0)
    snap = engine.snapshot(1)
    assert counters(engine) == (10, 10, 0, 0, 0)
    assert (snap.price_cents, snap.max_per_customer, snap.starts_at_ms, snap.ends_at_ms) == (250, 3, None, None)
    assert snap.outbox_backlog == 0
    assert engine.product_ids() == [1]


def test_set_stock_changes_the_total_and_keeps_committed_units(engine: Engine) -> None:
    engine.set_stock(1, 10)
    engine.reserve(1, 3)
    paid = engine.convert(engine.reserve(1, 2).hold_id)
    engine.settle(paid.order_id, "t1", "success")
    engine.convert(engine.reserve(1, 1).hold_id)

    change = engine.set_stock(1, 7, price_cents=100)

    assert change == StockChange(1, False, 7, 1, 3, 1, 2)
    assert counters(engine) == (7, 1, 3, 1, 2)
    assert engine.snapshot(1).price_cents == 100


def test_set_stock_refuses_a_total_below_the_committed_units(engine: Engine) -> None:
    engine.set_stock(1, 10)
    engine.reserve(1, 3)
    engine.convert(engine.reserve(1, 2).hold_id)

    with pytest.raises(StockBelowCommitted) as refused:
        engine.set_stock(1, 4)

    assert (refused.value.code, refused.value.requested, refused.value.committed) == ("stock_below_committed", 4, 5)
    assert counters(engine) == (10, 5, 3, 2, 0)
    assert engine.set_stock(1, 5).available == 0


@pytest.mark.parametrize(
    "settings",
    [
        {"total": -1},
        {"total": True},
        {"total": 1.5},
        {"total": 10, "price_cents": -1},
        {"total": 10, "max_per_customer": -1},
    ],
)
def test_set_stock_rejects_bad_numbers(engine: Engine, settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be an integer"):
        engine.set_stock(1, **settings)
    with pytest.raises(ProductNotFound):
        engine.snapshot(1)


def test_reserve_takes_units_into_an_active_hold(make_engine: MakeEngine) -> None:
    engine = make_engine(hold_ttl_ms=60_000)
    engine.set_stock(1, 10)

    hold = engine.reserve(1, 3, customer_id="alice")

    now = engine.snapshot(1).now_ms
    assert parse_id(hold.hold_id, "hold").product_id == 1
    assert (hold.quantity, hold.customer_id, hold.status, hold.order_id, hold.available) == (
        3,
        "alice",
        "active",
        None,
        7,
    )
    assert now < hold.expires_at_ms <= now + 60_000
    assert engine.hold(hold.hold_id) == replace(hold, available=None)
    assert counters(engine) == (10, 7, 3, 0, 0)
    assert engine.stats(1)["holds"] == 1


def test_reserve_refuses_when_sold_out(engine: Engine) -> None:
    engine.set_stock(1, 5)
    engine.reserve(1, 4)

    with pytest.raises(OutOfStock) as refused:
        engine.reserve(1, 2)

    assert (refused.value.code, refused.value.requested, refused.value.available) == ("out_of_stock", 2, 1)
    assert counters(engine) == (5, 1, 4, 0, 0)
    assert engine.stats(1)["out_of_stock"] == 1
    assert engine.reserve(1, 1).available == 0


def test_reserve_refuses_more_than_the_customer_limit(engine: Engine) -> None:
    engine.set_stock(1, 20, max_per_customer=3)
    engine.reserve(1, 2, customer_id="alice")

    with pytest.raises(LimitExceeded) as refused:
        engine.reserve(1, 2, customer_id="alice")

    error = refused.value
    assert (error.code, error.customer_id, error.limit, error.used, error.requested) == (
        "limit_exceeded",
        "alice",
        3,
        2,
        2,
    )
    assert engine.stats(1)["limit"] == 1
    engine.reserve(1, 1, customer_id="alice")
    engine.reserve(1, 3, customer_id="bob")
    engine.reserve(1, 5)  # no customer id: no per-customer limit
    assert counters(engine) == (20, 9, 11, 0, 0)


def test_customer_quota_counts_pending_and_paid_units_and_frees_cancelled_ones(engine: Engine) -> None:
    engine.set_stock(1, 20, max_per_customer=3)
    paid = engine.convert(engine.reserve(1, 1, customer_id="alice").hold_id)
    engine.settle(paid.order_id, "t1", "success")
    pending = engine.convert(engine.reserve(1, 1, customer_id="alice").hold_id)
    held = engine.reserve(1, 1, customer_id="alice")
    with pytest.raises(LimitExceeded) as refused:
        engine.reserve(1, 1, customer_id="alice")
    assert refused.value.used == 3

    engine.cancel(pending.order_id)
    engine.release(held.hold_id)
    failed = engine.convert(engine.reserve(1, 2, customer_id="alice").hold_id)
    engine.settle(failed.order_id, "t2", "failed")

    assert engine.reserve(1, 2, customer_id="alice").quantity == 2
    with pytest.raises(LimitExceeded):
        engine.reserve(1, 1, customer_id="alice")


def test_reserve_refuses_before_the_sale_starts(engine: Engine) -> None:
    starts = wall_ms() + 60_000
    engine.set_stock(1, 10, starts_at_ms=starts)

    with pytest.raises(SaleNotActive) as refused:
        engine.reserve(1, 1)

    error = refused.value
    assert (error.code, error.starts_at_ms, error.ends_at_ms) == ("sale_not_active", starts, 0)
    assert error.now_ms < starts
    assert counters(engine) == (10, 10, 0, 0, 0)
    assert engine.snapshot(1).starts_at_ms == starts


def test_reserve_refuses_after_the_sale_ends(engine: Engine) -> None:
    ends = wall_ms() - 1
    engine.set_stock(1, 10, starts_at_ms=ends - 60_000, ends_at_ms=ends)

    with pytest.raises(SaleNotActive) as refused:
        engine.reserve(1, 1)

    assert refused.value.now_ms >= ends
    assert counters(engine) == (10, 10, 0, 0, 0)


def test_reserve_succeeds_inside_the_sale_window(engine: Engine) -> None:
    now = wall_ms()
    engine.set_stock(1, 10, starts_at_ms=now - 1_000, ends_at_ms=now + 60_000)

    assert engine.reserve(1, 1).status == "active"


def test_reserve_refuses_an_unknown_product(engine: Engine) -> None:
    with pytest.raises(ProductNotFound) as refused:
        engine.reserve(9, 1)

    assert (refused.value.code, refused.value.product_id) == ("product_not_found", 9)


@pytest.mark.parametrize("quantity", [0, -1, MAX_QUANTITY + 1, True, 2.0])
def test_reserve_rejects_quantities_out_of_bounds(engine: Engine, quantity: Any) -> None:
    engine.set_stock(1, 10)

    with pytest.raises(ValueError, match="quantity"):
        engine.reserve(1, quantity)

    assert counters(engine) == (10, 10, 0, 0, 0)


def test_reserve_accepts_the_largest_quantity(engine: Engine) -> None:
    engine.set_stock(1, MAX_QUANTITY)

    assert engine.reserve(1, MAX_QUANTITY).available == 0


@pytest.mark.parametrize("field", ["customer_id", "idempotency_key"])
@pytest.mark.parametrize("value", ["", "x" * 129])
def test_reserve_rejects_empty_or_overlong_text(engine: Engine, field: str, value: str) -> None:
    engine.set_stock(1, 10)

    with pytest.raises(ValueError, match=field):
        engine.reserve(1, 1, **{field: value})


@pytest.mark.parametrize("field", ["customer_id", "idempotency_key"])
def test_reserve_refuses_text_utf8_cannot_encode_before_sending_it(engine: Engine, field: str) -> None:
    engine.set_stock(1, 10)

    with pytest.raises(ValueError, match=f"{field} must be text that UTF-8 can encode"):
        engine.reserve(1, 1, **{field: "c-\ud800"})

    assert counters(engine) == (10, 10, 0, 0, 0)


def test_reserve_with_the_same_idempotency_key_returns_the_first_hold(engine: Engine) -> None:
    engine.set_stock(1, 10)
    first = engine.reserve(1, 2, idempotency_key="cart-7")

    again = engine.reserve(1, 5, idempotency_key="cart-7")

    assert (again.hold_id, again.quantity, again.status, again.expires_at_ms) == (
        first.hold_id,
        2,
        "active",
        first.expires_at_ms,
    )
    assert counters(engine) == (10, 8, 2, 0, 0)
    assert engine.stats(1)["holds"] == 1
    assert engine.reserve(1, 2, idempotency_key="cart-8").hold_id != first.hold_id


def test_an_idempotency_key_replays_only_for_the_customer_who_used_it(engine: Engine) -> None:
    engine.set_stock(1, 10)
    alice = engine.reserve(1, 2, customer_id="alice", idempotency_key="cart-7")

    mallory = engine.reserve(1, 3, customer_id="mallory", idempotency_key="cart-7")
    anonymous = engine.reserve(1, 1, idempotency_key="cart-7")

    # Each caller's key names that caller's own hold: Mallory's carries nothing of Alice's.
    assert (mallory.customer_id, mallory.quantity, mallory.status) == ("mallory", 3, "active")
    assert mallory.hold_id != alice.hold_id
    assert (anonymous.customer_id, anonymous.quantity) == (None, 1)
    assert anonymous.hold_id not in (alice.hold_id, mallory.hold_id)
    assert counters(engine) == (10, 4, 6, 0, 0)
    # and every caller's retry still replays its own first hold
    assert engine.reserve(1, 2, customer_id="alice", idempotency_key="cart-7") == replace(alice, available=4)
    assert engine.reserve(1, 3, customer_id="mallory", idempotency_key="cart-7").hold_id == mallory.hold_id
    assert engine.reserve(1, 1, idempotency_key="cart-7").hold_id == anonymous.hold_id
    assert engine.stats(1)["holds"] == 3


def test_an_idempotency_key_stored_before_keys_were_scoped_replays_only_for_its_customer(engine: Engine) -> None:
    engine.set_stock(1, 10)
    alice = engine.reserve(1, 2, customer_id="alice")
    anonymous = engine.reserve(1, 1)
    # Given keys as the engine stored them before they were scoped: key -> hold ulid, one per product
    keys = product_keys(1)
    for key, hold in (("cart-alice", alice), ("cart-anon", anonymous)):
        engine.redis.hset(keys.idem, key, parse_id(hold.hold_id, "hold").ulid)
        engine.redis.zadd(keys.tombs, {f"i:{key}": hold.expires_at_ms + 86_400_000})

    # Then their owners' retries replay their holds
    assert engine.reserve(1, 2, customer_id="alice", idempotency_key="cart-alice").hold_id == alice.hold_id
    assert engine.reserve(1, 1, idempotency_key="cart-anon").hold_id == anonymous.hold_id
    # and anybody else using them gets a hold of its own
    mallory = engine.reserve(1, 2, customer_id="mallory", idempotency_key="cart-alice")
    assert (mallory.customer_id, mallory.hold_id != alice.hold_id) == ("mallory", True)
    assert engine.reserve(1, 2, idempotency_key="cart-alice").hold_id not in (alice.hold_id, mallory.hold_id)
    assert engine.reserve(1, 1, customer_id="alice", idempotency_key="cart-anon").hold_id != anonymous.hold_id
    assert counters(engine) == (10, 2, 8, 0, 0)


def test_reserve_with_the_same_hold_id_returns_the_first_hold(engine: Engine) -> None:
    engine.set_stock(1, 10)
    hold_id = new_id("hold", 1)
    first = engine.reserve(1, 2, hold_id=hold_id)

    again = engine.reserve(1, 2, hold_id=hold_id)

    assert first.hold_id == again.hold_id == hold_id
    assert again.expires_at_ms == first.expires_at_ms
    assert counters(engine) == (10, 8, 2, 0, 0)


def test_reserve_replay_reports_what_became_of_the_hold(make_engine: MakeEngine) -> None:
    engine, lapsing = make_engine(), make_engine(hold_ttl_ms=150)  # one client, two hold TTLs
    engine.set_stock(1, 10)
    lapsed = lapsing.reserve(1, 1, idempotency_key="k1")
    released = engine.reserve(1, 1, idempotency_key="k2")
    engine.release(released.hold_id)
    sleep_past(lapsed.expires_at_ms)

    assert engine.reserve(1, 1, idempotency_key="k1").status == "expired"
    assert engine.reserve(1, 1, idempotency_key="k2").status == "released"
    assert counters(engine) == (10, 10, 0, 0, 0)


def test_reserve_refuses_a_hold_id_of_another_product(engine: Engine) -> None:
    engine.set_stock(1, 10)

    with pytest.raises(InvalidId):
        engine.reserve(1, 1, hold_id=new_id("hold", 2))


def test_expired_holds_free_their_units_for_reserve_without_a_reaper(make_engine: MakeEngine) -> None:
    engine = make_engine(hold_ttl_ms=150)
    engine.set_stock(1, 3, max_per_customer=3)
    first = engine.reserve(1, 3, customer_id="alice")
    sleep_past(first.expires_at_ms)

    again = engine.reserve(1, 3, customer_id="alice")

    assert again.available == 0
    assert engine.hold(first.hold_id).status == "expired"
    assert engine.stats(1)["expired"] == 1


def test_snapshot_counts_expired_holds_as_available_right_after_expiry(make_engine: MakeEngine) -> None:
    engine = make_engine(hold_ttl_ms=200)
    engine.set_stock(1, 5)
    hold = engine.reserve(1, 2)
    sleep_past(hold.expires_at_ms)

    snap = engine.snapshot(1)

    assert snap.now_ms >= hold.expires_at_ms
    assert (snap.available, snap.held) == (5, 0)


def test_snapshot_refuses_an_unknown_product(engine: Engine) -> None:
    with pytest.raises(ProductNotFound):
        engine.snapshot(404)


def test_snapshot_reads_redis_server_time(engine: Engine) -> None:
    engine.set_stock(1, 1)

    assert abs(engine.snapshot(1).now_ms - wall_ms()) < 2_000


def test_a_reserve_replay_counts_expired_units_as_available(make_engine: MakeEngine) -> None:
    engine = make_engine()
    engine.set_stock(1, 10)
    kept = engine.reserve(1, 1, idempotency_key="k")
    engine.convert(kept.hold_id)
    lapsing = make_engine(hold_ttl_ms=150).reserve(1, 4)
    sleep_past(lapsing.expires_at_ms)

    again = engine.reserve(1, 1, idempotency_key="k")

    assert again.available == 9
