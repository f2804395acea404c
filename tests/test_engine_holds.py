"""Contract of release, convert and hold, and the tombstones that tell late calls apart."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from engine import Engine, new_id, parse_id, product_keys
from engine.exceptions import (
    HoldAlreadyUsed,
    HoldExpired,
    HoldNotFound,
    HoldReleased,
    InvalidId,
    LimitExceeded,
    OrderNotFound,
)
from engine.product_rules import MAX_PRICE_CENTS, MAX_QUANTITY
from engine.types import Order
from tests.support.clock import FakeClock, clocked_engine

MakeEngine = Callable[..., Engine]
DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS  # the longest FLASHSALE_ORDER_TTL_SECONDS
TWO_MINUTES_MS = 120_000  # the default hold TTL


def sleep_past(instant_ms: int) -> None:
    """Sleep until just after ``instant_ms``; the test servers share this machine's clock."""
    time.sleep(max(0.0, instant_ms / 1000 - time.time()) + 0.01)


def available_and_held(engine: Engine, product_id: int = 1) -> tuple[int, int]:
    snap = engine.snapshot(product_id)
    return snap.available, snap.held


def test_release_gives_the_units_back_at_once(engine: Engine) -> None:
    engine.set_stock(1, 5, max_per_customer=3)
    hold = engine.reserve(1, 3, customer_id="alice")

    released = engine.release(hold.hold_id)

    assert (released.hold_id, released.status, released.quantity) == (hold.hold_id, "released", 3)
    assert available_and_held(engine) == (5, 0)
    assert engine.reserve(1, 3, customer_id="alice").available == 2
    assert engine.stats(1)["released"] == 1


def test_release_twice_has_one_effect(engine: Engine) -> None:
    engine.set_stock(1, 5)
    hold = engine.reserve(1, 3)
    engine.release(hold.hold_id)

    again = engine.release(hold.hold_id)

    assert again.status == "released"
    assert available_and_held(engine) == (5, 0)
    assert engine.stats(1)["released"] == 1


def test_release_refuses_an_unknown_hold(engine: Engine) -> None:
    engine.set_stock(1, 5)
    hold_id = new_id("hold", 1)

    with pytest.raises(HoldNotFound) as refused:
        engine.release(hold_id)

    assert (refused.value.code, refused.value.hold_id) == ("hold_not_found", hold_id)


def test_release_refuses_an_expired_hold(make_engine: MakeEngine) -> None:
    engine = make_engine(hold_ttl_ms=150)
    engine.set_stock(1, 5)
    hold = engine.reserve(1, 2)
    sleep_past(hold.expires_at_ms)

    with pytest.raises(HoldExpired) as refused:
        engine.release(hold.hold_id)

    assert (refused.value.code, refused.value.expired_at_ms) == ("hold_expired", hold.expires_at_ms)
    assert available_and_held(engine) == (5, 0)
    assert engine.stats(1)["expired"] == 1
    assert "released" not in engine.stats(1)


def test_release_refuses_a_converted_hold(engine: Engine) -> None:
    engine.set_stock(1, 5)
    hold = engine.reserve(1, 2)
    order = engine.convert(hold.hold_id)

    with pytest.raises(HoldAlreadyUsed) as refused:
        engine.release(hold.hold_id)

    assert (refused.value.code, refused.value.order_id) == ("hold_already_used", order.order_id)
    assert engine.order(order.order_id).status == "pending"
    assert engine.snapshot(1).pending == 2


def test_convert_turns_a_hold_into_a_pending_order(make_engine: MakeEngine) -> None:
    engine = make_engine(order_ttl_ms=60_000)
    engine.set_stock(1, 10, price_cents=250)
    hold = engine.reserve(1, 2, customer_id="alice")

    order = engine.convert(hold.hold_id)

    assert parse_id(order.order_id, "order").product_id == 1
    assert (order.hold_id, order.product_id, order.customer_id, order.quantity) == (hold.hold_id, 1, "alice", 2)
    assert (order.amount_cents, order.status, order.closed_at_ms) == (500, "pending", None)
    assert (order.transaction_id, order.cancel_reason) == (None, None)
    assert order.expires_at_ms == order.created_at_ms + 60_000
    assert abs(order.created_at_ms - engine.snapshot(1).now_ms) < 2_000
    assert engine.order(order.order_id) == order
    converted = engine.hold(hold.hold_id)
    assert (converted.status, converted.order_id) == ("converted", order.order_id)
    snap = engine.snapshot(1)
    assert (snap.available, snap.held, snap.pending) == (8, 0, 2)
    assert engine.stats(1)["orders"] == 1


def test_convert_with_the_same_order_id_replays_the_first_order(engine: Engine) -> None:
    engine.set_stock(1, 10)
    hold = engine.reserve(1, 2)
    order_id = new_id("order", 1)
    first = engine.convert(hold.hold_id, order_id=order_id)

    again = engine.convert(hold.hold_id, order_id=order_id)

    assert again == first
    assert engine.snapshot(1).pending == 2
    assert engine.stats(1)["orders"] == 1
    engine.settle(order_id, "t1", "success")
    assert engine.convert(hold.hold_id, order_id=order_id).status == "paid"


def test_convert_twice_is_refused_as_already_used(engine: Engine) -> None:
    engine.set_stock(1, 10)
    hold = engine.reserve(1, 2)
    first = engine.convert(hold.hold_id)

    with pytest.raises(HoldAlreadyUsed) as refused:
        engine.convert(hold.hold_id)

    assert refused.value.order_id == first.order_id
    assert engine.snapshot(1).pending == 2


def test_convert_refuses_a_released_hold(engine: Engine) -> None:
    engine.set_stock(1, 10)
    hold = engine.reserve(1, 2)
    engine.release(hold.hold_id)

    with pytest.raises(HoldReleased) as refused:
        engine.convert(hold.hold_id)

    assert refused.value.code == "hold_released"
    assert engine.snapshot(1).pending == 0


def test_convert_refuses_an_expired_hold_even_with_no_reaper(make_engine: MakeEngine) -> None:
    engine = make_engine(hold_ttl_ms=150)
    engine.set_stock(1, 10, max_per_customer=2)
    hold = engine.reserve(1, 2, customer_id="alice")
    sleep_past(hold.expires_at_ms)

    with pytest.raises(HoldExpired) as refused:
        engine.convert(hold.hold_id)

    assert refused.value.expired_at_ms == hold.expires_at_ms
    with pytest.raises(HoldExpired):
        engine.convert(hold.hold_id)
    snap = engine.snapshot(1)
    assert (snap.available, snap.held, snap.pending) == (10, 0, 0)
    assert engine.stats(1)["expired"] == 1
    assert engine.reserve(1, 2, customer_id="alice").quantity == 2


def test_convert_refuses_an_unknown_hold(engine: Engine) -> None:
    engine.set_stock(1, 10)

    with pytest.raises(HoldNotFound):
        engine.convert(new_id("hold", 1))


def test_convert_refuses_an_order_id_of_another_product(engine: Engine) -> None:
    engine.set_stock(1, 10)
    hold = engine.reserve(1, 2)

    with pytest.raises(InvalidId):
        engine.convert(hold.hold_id, order_id=new_id("order", 2))

    assert engine.hold(hold.hold_id).status == "active"


def test_convert_refuses_an_order_id_that_names_another_order(engine: Engine) -> None:
    engine.set_stock(1, 10)
    first = engine.convert(engine.reserve(1, 2).hold_id)
    hold = engine.reserve(1, 3)

    with pytest.raises(InvalidId):
        engine.convert(hold.hold_id, order_id=first.order_id)

    assert engine.order(first.order_id) == first
    assert engine.hold(hold.hold_id).status == "active"
    snap = engine.snapshot(1)
    assert (snap.available, snap.held, snap.pending) == (5, 3, 2)


def test_hold_reports_each_state(make_engine: MakeEngine) -> None:
    engine, short = make_engine(), make_engine(hold_ttl_ms=150)  # one client, two hold TTLs
    engine.set_stock(1, 10)
    held = engine.reserve(1, 1)
    lapsing = short.reserve(1, 1)

    assert engine.hold(held.hold_id).status == "active"
    sleep_past(lapsing.expires_at_ms)
    assert engine.hold(lapsing.hold_id).status == "expired"
    assert engine.snapshot(1).held == 1
    with pytest.raises(HoldNotFound):
        engine.hold(new_id("hold", 1))


def test_holds_with_a_shorter_ttl_expire_on_time_behind_longer_ones(make_engine: MakeEngine) -> None:
    engine, short = make_engine(), make_engine(hold_ttl_ms=150)  # two API processes, two hold TTLs
    engine.set_stock(1, 10)
    engine.reserve(1, 3)
    lapsing = [short.reserve(1, 1), short.reserve(1, 2)]
    engine.reserve(1, 1)

    sleep_past(lapsing[-1].expires_at_ms)

    assert available_and_held(engine) == (6, 4)
    assert engine.stats(1)["expired"] == 2


def test_the_expiry_queue_drops_released_and_converted_holds_once_they_are_due(make_engine: MakeEngine) -> None:
    engine = make_engine(hold_ttl_ms=1_000)  # six calls before the first lapses, on a machine busy with other tests
    engine.set_stock(1, 10)
    holds = [engine.reserve(1, 1) for _ in range(4)]
    engine.release(holds[0].hold_id)
    engine.convert(holds[2].hold_id)
    keys = product_keys(1)
    assert engine.redis.llen(keys.hold_queue) == 4  # released and converted entries wait for their turn

    sleep_past(holds[-1].expires_at_ms)
    reaped = engine.reap(1)

    assert (reaped.holds_expired, reaped.overdue_left) == (2, 0)
    assert (engine.redis.llen(keys.hold_queue), engine.redis.zcard(keys.hold_exp)) == (0, 0)
    assert available_and_held(engine) == (9, 0)


def test_late_calls_tell_unknown_expired_used_and_released_holds_apart(make_engine: MakeEngine) -> None:
    engine = make_engine()
    engine.set_stock(1, 10)
    expired = make_engine(hold_ttl_ms=150).reserve(1, 1)
    used = engine.reserve(1, 1)
    released = engine.reserve(1, 1)
    engine.convert(used.hold_id)
    engine.release(released.hold_id)
    sleep_past(expired.expires_at_ms)
    engine.reap(1)

    with pytest.raises(HoldNotFound):
        engine.convert(new_id("hold", 1))
    with pytest.raises(HoldExpired):
        engine.convert(expired.hold_id)
    with pytest.raises(HoldAlreadyUsed):
        engine.convert(used.hold_id)
    with pytest.raises(HoldReleased):
        engine.convert(released.hold_id)


@pytest.fixture
def clocked() -> Iterator[tuple[Engine, FakeClock]]:
    with clocked_engine(hold_ttl_ms=1_000) as (engine, clock):
        yield engine, clock


def test_tombstones_answer_for_a_day_then_are_forgotten(clocked: tuple[Engine, FakeClock]) -> None:
    engine, clock = clocked
    engine.set_stock(1, 10)
    expired = engine.reserve(1, 1)
    used = engine.reserve(1, 1)
    released = engine.reserve(1, 1, idempotency_key="cart")
    order = engine.convert(used.hold_id)
    engine.release(released.hold_id)
    engine.settle(order.order_id, "t1", "success")

    clock.advance(DAY_MS - 10_000)
    assert engine.reap(1).tombstones_pruned == 0
    with pytest.raises(HoldExpired):
        engine.convert(expired.hold_id)
    with pytest.raises(HoldAlreadyUsed):
        engine.convert(used.hold_id)
    assert engine.reserve(1, 1, idempotency_key="cart").hold_id == released.hold_id

    clock.advance(20_000)
    assert engine.reap(1).tombstones_pruned == 5  # 3 holds, the paid order, the idempotency key
    for hold in (expired, used, released):
        with pytest.raises(HoldNotFound):
            engine.convert(hold.hold_id)
    assert engine.reserve(1, 1, idempotency_key="cart").hold_id != released.hold_id
    assert engine.snapshot(1).sold == 1


def test_reserve_prunes_old_tombstones_in_bounded_batches(clocked: tuple[Engine, FakeClock]) -> None:
    engine, clock = clocked
    engine.set_stock(1, 1_000)
    holds = [engine.reserve(1, 1) for _ in range(250)]
    for hold in holds:
        engine.release(hold.hold_id)
    clock.advance(1_000 + DAY_MS)  # a day past the holds' expiry

    engine.reserve(1, 1)

    tombs = engine.redis.zcard(product_keys(1).tombs)
    assert tombs == 50  # the batch is 200
    assert engine.reap(1).tombstones_pruned == 50


def test_customer_limit_is_restored_after_holds_expire(clocked: tuple[Engine, FakeClock]) -> None:
    engine, clock = clocked
    engine.set_stock(1, 10, max_per_customer=2)
    engine.reserve(1, 2, customer_id="alice")
    with pytest.raises(LimitExceeded):
        engine.reserve(1, 1, customer_id="alice")

    clock.advance(1_000)

    assert engine.reserve(1, 2, customer_id="alice").quantity == 2


def test_snapshot_prunes_old_tombstones_too(clocked: tuple[Engine, FakeClock]) -> None:
    engine, clock = clocked
    engine.set_stock(1, 10)
    hold = engine.release(engine.reserve(1, 1).hold_id)
    clock.advance(1_000 + DAY_MS)  # a day past the hold's expiry

    engine.snapshot(1)

    assert engine.redis.zcard(product_keys(1).tombs) == 0
    with pytest.raises(HoldNotFound):
        engine.release(hold.hold_id)


def test_a_convert_replay_reports_an_order_that_expired_since(make_engine: MakeEngine) -> None:
    engine = make_engine(order_ttl_ms=150)
    engine.set_stock(1, 10)
    hold = engine.reserve(1, 2)
    order_id = new_id("order", 1)
    first = engine.convert(hold.hold_id, order_id=order_id)
    sleep_past(first.expires_at_ms)

    again = engine.convert(hold.hold_id, order_id=order_id)

    assert (again.status, again.cancel_reason) == ("cancelled", "expired")
    assert engine.snapshot(1).available == 10


def test_an_order_of_the_most_units_at_the_highest_price_keeps_its_exact_amount(engine: Engine) -> None:
    price, quantity = MAX_PRICE_CENTS - 12_345, MAX_QUANTITY - 3  # many significant digits
    engine.set_stock(1, quantity, price_cents=price)

    order = engine.convert(engine.reserve(1, quantity).hold_id)

    assert order.amount_cents == engine.order(order.order_id).amount_cents == quantity * price
    with pytest.raises(ValueError, match="price_cents"):
        engine.set_stock(2, 1, price_cents=MAX_PRICE_CENTS + 1)


# Retention: a key never outlives its hold's record, and a hold's record never goes before its order's.


def test_a_released_hold_answers_through_its_idempotency_key_until_the_key_is_forgotten() -> None:
    with clocked_engine(hold_ttl_ms=TWO_MINUTES_MS) as (engine, clock):
        engine.set_stock(1, 10)
        first = engine.reserve(1, 1, customer_id="alice", idempotency_key="cart")
        engine.release(first.hold_id)

        # A day after the release, but not yet a day after the hold's expiry, when the key goes
        clock.advance(DAY_MS + 1_000)
        engine.reap(1)
        again = engine.reserve(1, 1, customer_id="alice", idempotency_key="cart")
        assert (again.hold_id, again.status) == (first.hold_id, "released")

        # Once the key is forgotten too, the key makes a new hold, under a new id
        clock.advance(TWO_MINUTES_MS)
        engine.reap(1)
        later = engine.reserve(1, 1, customer_id="alice", idempotency_key="cart")
        assert (later.hold_id != first.hold_id, later.status) == (True, "active")
        assert available_and_held(engine) == (9, 1)


def test_a_hold_id_pruned_before_its_idempotency_key_never_comes_back_as_a_new_hold() -> None:
    with clocked_engine(hold_ttl_ms=TWO_MINUTES_MS) as (engine, clock):
        engine.set_stock(1, 10)
        first = engine.reserve(1, 1, customer_id="alice", idempotency_key="cart")
        order = engine.convert(first.hold_id)
        engine.settle(order.order_id, "t1", "success")
        clock.advance(DAY_MS + TWO_MINUTES_MS)

        # Given a reaper's batch that ends between the hold's tombstone and its key's (they share a score)
        tombs = product_keys(1).tombs
        through_hold = engine.redis.zrank(tombs, f"h:{parse_id(first.hold_id, 'hold').ulid}") + 1
        assert engine.reap(1, batch=through_hold).tombstones_pruned == through_hold
        assert engine.redis.hlen(product_keys(1).idem) == 1  # the key is left
        with pytest.raises(HoldNotFound):
            engine.hold(first.hold_id)

        # When the same caller sends the key again
        again = engine.reserve(1, 1, customer_id="alice", idempotency_key="cart")

        # Then it gets a new hold, under a new id: the old id, whose order PostgreSQL keeps, never comes back
        assert (again.hold_id != first.hold_id, again.status) == (True, "active")
        assert engine.reserve(1, 1, customer_id="alice", idempotency_key="cart").hold_id == again.hold_id
        with pytest.raises(HoldNotFound):
            engine.hold(first.hold_id)


def test_a_retried_convert_replays_an_order_for_as_long_as_the_order_is_kept() -> None:
    with clocked_engine(hold_ttl_ms=TWO_MINUTES_MS, order_ttl_ms=WEEK_MS) as (engine, clock):
        engine.set_stock(1, 10, price_cents=100)
        hold = engine.reserve(1, 2, customer_id="alice")
        order_id = new_id("order", 1)
        order = engine.convert(hold.hold_id, order_id=order_id)

        # More than a day after the conversion, the order still pending: the retry replays it
        clock.advance(DAY_MS + TWO_MINUTES_MS + 1)
        engine.reap(1)
        assert engine.convert(hold.hold_id, order_id=order_id) == order

        # The order expires unpaid, and is reaped late: the retry answers it, cancelled, for a day more
        clock.advance(WEEK_MS - DAY_MS - TWO_MINUTES_MS + 5_000)
        engine.reap(1)
        cancelled = engine.convert(hold.hold_id, order_id=order_id)
        assert (cancelled.order_id, cancelled.status, cancelled.cancel_reason) == (order_id, "cancelled", "expired")
        clock.advance(DAY_MS - 1)
        engine.reap(1)
        assert engine.convert(hold.hold_id, order_id=order_id).status == "cancelled"

        # Then hold and order are forgotten together
        clock.advance(1)
        engine.reap(1)
        with pytest.raises(HoldNotFound):
            engine.convert(hold.hold_id, order_id=order_id)
        with pytest.raises(OrderNotFound):
            engine.order(order_id)
        assert engine.redis.zcard(product_keys(1).tombs) == 0


def test_a_retried_convert_of_an_order_paid_at_once_replays_it_for_a_day() -> None:
    with clocked_engine(hold_ttl_ms=TWO_MINUTES_MS, order_ttl_ms=WEEK_MS) as (engine, clock):
        engine.set_stock(1, 10, price_cents=100)
        hold = engine.reserve(1, 1, customer_id="alice", idempotency_key="cart")
        order_id = new_id("order", 1)
        engine.convert(hold.hold_id, order_id=order_id)
        engine.settle(order_id, "t1", "success")

        clock.advance(DAY_MS - 1)
        engine.reap(1)
        assert engine.convert(hold.hold_id, order_id=order_id).status == "paid"

        # The hold stays while its key does (a day after the hold's expiry), then both go
        clock.advance(1)
        engine.reap(1)
        with pytest.raises(HoldAlreadyUsed) as used:
            engine.convert(hold.hold_id, order_id=order_id)
        assert used.value.order_id == order_id
        assert engine.reserve(1, 1, customer_id="alice", idempotency_key="cart").hold_id == hold.hold_id
        clock.advance(TWO_MINUTES_MS)
        engine.reap(1)
        keys = product_keys(1)
        assert (engine.redis.hlen(keys.holds), engine.redis.hlen(keys.idem)) == (0, 0)


def test_a_restored_pending_order_keeps_its_hold_answering_while_the_order_is_pending() -> None:
    with clocked_engine(order_ttl_ms=WEEK_MS) as (engine, clock):
        order = Order(
            order_id=new_id("order", 1),
            hold_id=new_id("hold", 1),
            product_id=1,
            customer_id="alice",
            quantity=1,
            amount_cents=100,
            status="pending",
            created_at_ms=clock.ms - 1_000,
            expires_at_ms=clock.ms + 6 * DAY_MS,
            closed_at_ms=None,
            transaction_id=None,
            cancel_reason=None,
        )
        engine.restore(
            1,
            mark=engine.outbox_mark(1),
            total=10,
            price_cents=100,
            max_per_customer=0,
            starts_at_ms=None,
            ends_at_ms=None,
            sold=0,
            orders=[order],
            payments=[],
            customers={"alice": 1},
        )

        clock.advance(DAY_MS + 1)
        engine.reap(1)

        replayed = engine.convert(order.hold_id, order_id=order.order_id)
        assert (replayed.order_id, replayed.status) == (order.order_id, "pending")
