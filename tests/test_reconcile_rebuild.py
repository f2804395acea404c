"""Reconciliation against real Redis and PostgreSQL: detect, drain, and rebuild Redis after it lost everything."""

from __future__ import annotations

import pytest
import redis
import sqlalchemy as sa

from engine import Engine
from engine.exceptions import AdmissionRequired, HoldAlreadyUsed, LimitExceeded, OutOfStock, TicketNotFound
from engine.keys import product_keys
from engine.types import WaitingRoomSettings
from reconciliation.collect import collect, durable_counts
from reconciliation.compare import compare
from reconciliation.exceptions import NotInCatalog, RebuildUnsettled
from reconciliation.repair import RESTORE_ATTEMPTS, drain_to_end, rebuild, rebuild_all
from tests.support.database import order_statuses, processing_transactions
from tests.support.sales import Sale, add_product, place_orders, sell_between_the_read_and_the_restore


def verdicts(engine: Engine, db: sa.Engine) -> dict[int, str]:
    return {f.product_id: f.status for f in compare(collect(engine, db))}


@pytest.fixture
def sale(real_engine: Engine, db: sa.Engine) -> Sale:
    add_product(real_engine, db, 1, stock=100, max_per_customer=6)
    add_product(real_engine, db, 2, stock=50)
    sale = place_orders(real_engine, 1, 14)
    sale.merge(place_orders(real_engine, 2, 5, prefix="u"))
    real_engine.reserve(1, 4, customer_id="holder")  # an active hold: Redis only
    return sale


def test_an_undrained_outbox_is_behind_until_drained(real_engine: Engine, db: sa.Engine, sale: Sale) -> None:
    assert verdicts(real_engine, db) == {1: "behind", 2: "behind"}

    drain_to_end(real_engine, db)

    assert verdicts(real_engine, db) == {1: "consistent", 2: "consistent"}


def test_after_redis_loses_everything_rebuild_restores_counters_that_match_postgresql(
    real_engine: Engine, real_redis: redis.Redis, db: sa.Engine, sale: Sale
) -> None:
    drain_to_end(real_engine, db)
    durable = durable_counts(db)
    real_redis.flushdb()

    findings = compare(collect(real_engine, db))
    assert [(f.status, f.remedy) for f in findings] == [("drifted", "rebuild")] * 2

    rebuilt = rebuild_all(real_engine, db)

    assert sorted(rebuilt) == [1, 2]
    for product_id, counts in durable.items():
        snap = real_engine.snapshot(product_id)
        assert (snap.total, snap.pending, snap.sold, snap.held) == (counts.stock, counts.pending, counts.paid, 0)
        assert snap.available == counts.stock - counts.pending - counts.paid
    assert verdicts(real_engine, db) == {1: "consistent", 2: "consistent"}


def test_rebuilt_orders_payments_and_quotas_behave_as_before_the_loss(
    real_engine: Engine, real_redis: redis.Redis, db: sa.Engine, sale: Sale
) -> None:
    drain_to_end(real_engine, db)
    paid = next(o for o, s in sale.orders.items() if s == "paid" and o.startswith("o1_"))
    pending = next(o for o, s in sale.orders.items() if s == "pending" and o.startswith("o1_"))
    paid_before, pending_before = real_engine.order(paid), real_engine.order(pending)
    real_redis.flushdb()

    rebuild(real_engine, db, 1)

    # Orders come back as they were, holds behind them stay used
    assert real_engine.order(paid) == paid_before
    assert real_engine.order(pending) == pending_before
    with pytest.raises(HoldAlreadyUsed):
        real_engine.convert(paid_before.hold_id)
    # A transaction id takes effect at most once, even across the loss
    assert paid_before.transaction_id is not None
    assert real_engine.settle(paid, paid_before.transaction_id, "success").duplicate
    # Customer quotas count pending and paid units again: c1 has 3 of 6 (order 1 pending, order 8 paid)
    with pytest.raises(LimitExceeded):
        real_engine.reserve(1, 4, customer_id="c1")
    real_engine.reserve(1, 3, customer_id="c1")
    # And the pending order can still be paid, and that reaches PostgreSQL
    real_engine.settle(pending, "after-rebuild", "success")
    drain_to_end(real_engine, db)
    assert order_statuses(db)[pending] == "paid"
    assert verdicts(real_engine, db)[1] == "consistent"


@pytest.mark.usefixtures("sale")
def test_rebuild_twice_has_the_effect_of_once(real_engine: Engine, real_redis: redis.Redis, db: sa.Engine) -> None:
    drain_to_end(real_engine, db)
    real_redis.flushdb()

    first = rebuild_all(real_engine, db)
    second = rebuild_all(real_engine, db, only_missing=False)

    assert first == second
    assert rebuild_all(real_engine, db) == {}  # nothing is missing any more
    assert verdicts(real_engine, db) == {1: "consistent", 2: "consistent"}


def test_rebuild_drains_the_outbox_first_so_nothing_acknowledged_is_dropped(
    real_engine: Engine, db: sa.Engine, sale: Sale
) -> None:
    assert real_engine.outbox_backlog(1) > 0

    rebuild(real_engine, db, 1)

    assert {o: s for o, s in order_statuses(db).items() if o.startswith("o1_")} == {
        o: s for o, s in sale.orders.items() if o.startswith("o1_")
    }
    snap = real_engine.snapshot(1)
    assert snap.held == 0  # the active hold was dropped: rebuild is for products Redis lost


def test_rebuild_refuses_a_product_the_catalog_does_not_have(real_engine: Engine, db: sa.Engine) -> None:
    with pytest.raises(NotInCatalog) as error:
        rebuild(real_engine, db, 77)
    assert error.value.code == "product_not_in_catalog"


def test_rebuild_never_restores_a_snapshot_that_a_drained_sale_made_stale(
    real_engine: Engine, db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given stock 1, nothing sold, and a buyer who pays for the unit while the rebuild is between its
    # read of PostgreSQL and its restore
    add_product(real_engine, db, 1, stock=1)
    sold = sell_between_the_read_and_the_restore(monkeypatch, real_engine, db, times=1)

    # When the rebuild runs
    change = rebuild(real_engine, db, 1)

    # Then it restored from a read that counts the sale, and nobody can buy the unit again
    assert len(sold) == 1
    assert (change.total, change.available, change.sold) == (1, 0, 1)
    with pytest.raises(OutOfStock):
        real_engine.reserve(1, 1, customer_id="second-buyer")
    assert durable_counts(db)[1].paid == 1
    assert verdicts(real_engine, db) == {1: "consistent"}


def test_rebuild_gives_up_with_a_clear_error_when_the_product_never_stops_changing(
    real_engine: Engine, db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_product(real_engine, db, 1, stock=10)
    sold = sell_between_the_read_and_the_restore(monkeypatch, real_engine, db, times=100)

    with pytest.raises(RebuildUnsettled) as error:
        rebuild(real_engine, db, 1)

    assert (error.value.code, error.value.product_id) == ("rebuild_unsettled", 1)
    assert len(sold) == error.value.attempts == RESTORE_ATTEMPTS
    # Every refused restore left the engine as the sales made it: nothing was restored from a stale read
    snap = real_engine.snapshot(1)
    assert (snap.available, snap.sold) == (10 - len(sold), len(sold))
    assert verdicts(real_engine, db) == {1: "consistent"}


GRACE_MS = 3_600_000  # longer than the order TTL (900 s), so that it moves the expiry


@pytest.mark.parametrize("grace_ms", [GRACE_MS, 1], ids=["grace-moves-the-expiry", "grace-shorter-than-the-ttl"])
def test_after_a_rebuild_processing_extends_an_order_no_more_than_before(
    real_engine: Engine, real_redis: redis.Redis, db: sa.Engine, grace_ms: int
) -> None:
    # Given a pending order whose payment is under way: its one grace is used (issue 17)
    add_product(real_engine, db, 1, stock=10)
    order = real_engine.convert(real_engine.reserve(1, 1, customer_id="c").hold_id)
    drain_to_end(real_engine, db)  # PostgreSQL has the order pending before it hears of the processing
    first = real_engine.processing(order.order_id, "txn-first", grace_ms)
    assert first.extended
    drain_to_end(real_engine, db)

    # When Redis loses everything and the product is rebuilt from PostgreSQL
    real_redis.flushdb()
    rebuild(real_engine, db, 1)

    # Then another transaction's processing changes nothing, and the same one's is a duplicate, as before the loss
    other = real_engine.processing(order.order_id, "txn-other", 2 * GRACE_MS)
    assert (other.extended, other.duplicate) == (False, False)
    assert other.order.expires_at_ms == first.order.expires_at_ms
    again = real_engine.processing(order.order_id, "txn-first", 2 * GRACE_MS)
    assert (again.extended, again.duplicate) == (False, True)
    assert real_engine.order(order.order_id).expires_at_ms == first.order.expires_at_ms
    # And the order still pays, and PostgreSQL keeps which transaction's processing used the grace
    assert real_engine.settle(order.order_id, "txn-first", "success").applied
    drain_to_end(real_engine, db)
    assert order_statuses(db)[order.order_id] == "paid"
    assert processing_transactions(db) == {order.order_id: "txn-first"}
    assert verdicts(real_engine, db) == {1: "consistent"}


def test_a_rebuilt_order_without_processing_may_still_be_extended_once(
    real_engine: Engine, real_redis: redis.Redis, db: sa.Engine
) -> None:
    add_product(real_engine, db, 1, stock=10)
    order = real_engine.convert(real_engine.reserve(1, 1).hold_id)
    drain_to_end(real_engine, db)
    real_redis.flushdb()
    rebuild(real_engine, db, 1)

    first = real_engine.processing(order.order_id, "txn-after", GRACE_MS)
    second = real_engine.processing(order.order_id, "txn-later", 2 * GRACE_MS)

    assert first.extended
    assert first.order.expires_at_ms > order.expires_at_ms
    assert not second.extended
    assert second.order.expires_at_ms == first.order.expires_at_ms


def test_a_rebuild_reopens_the_waiting_room_with_its_catalog_settings(
    real_engine: Engine, real_redis: redis.Redis, db: sa.Engine
) -> None:
    # Given a product with a waiting room (issue 15), a buyer who holds a ticket, and its published seed hash
    add_product(real_engine, db, 1, stock=10, waiting_room=True, admit_per_second=7, admission_ttl_seconds=30)
    old_ticket = real_engine.queue_join(1, "buyer")
    before = real_engine.queue_info(1)
    real_redis.flushdb()

    # When Redis loses everything and the product is rebuilt from PostgreSQL
    rebuild(real_engine, db, 1)

    # Then the room is open with the catalog's settings, and nobody holds without an admission
    snap = real_engine.snapshot(1)
    assert (snap.waiting_room, snap.admit_per_second, snap.admission_ttl_ms) == (True, 7, 30_000)
    with pytest.raises(AdmissionRequired):
        real_engine.reserve(1, 1, customer_id="fastest-connection")
    # The tickets lived in Redis only: the old one is gone, and the room was opened again with a new seed
    with pytest.raises(TicketNotFound):
        real_engine.queue_poll(old_ticket.ticket, "buyer")
    after = real_engine.queue_info(1)
    assert after.on
    assert after.seed_sha256 not in (None, before.seed_sha256)
    # The buyer rejoins, is admitted, and holds with the admission
    ticket = real_engine.queue_join(1, "buyer")
    assert ticket.created
    admitted = real_engine.queue_poll(ticket.ticket, "buyer")
    assert admitted.state == "admitted"
    assert admitted.admission_token is not None
    hold = real_engine.reserve(1, 1, customer_id="buyer", admission=admitted.admission_token)
    assert hold.quantity == 1


def test_a_rebuild_keeps_a_waiting_room_redis_still_has(real_engine: Engine, db: sa.Engine) -> None:
    add_product(real_engine, db, 1, stock=10, waiting_room=True)
    ticket = real_engine.queue_join(1, "buyer")
    before = real_engine.queue_info(1)

    rebuild(real_engine, db, 1)

    assert real_engine.queue_info(1).seed_sha256 == before.seed_sha256
    assert real_engine.queue_poll(ticket.ticket, "buyer").number == ticket.number


def test_a_rebuild_closes_a_waiting_room_the_catalog_does_not_have(real_engine: Engine, db: sa.Engine) -> None:
    # Given a catalog without a room, and a Redis that has one (set behind the catalog's back)
    add_product(real_engine, db, 1, stock=10)
    real_engine.set_stock(1, 10, price_cents=250, waiting_room=WaitingRoomSettings())
    assert real_engine.snapshot(1).waiting_room

    rebuild(real_engine, db, 1)

    assert not real_engine.snapshot(1).waiting_room
    assert real_engine.reserve(1, 1).quantity == 1


def test_a_rebuild_restores_the_low_stock_threshold(
    real_engine: Engine, real_redis: redis.Redis, db: sa.Engine
) -> None:
    add_product(real_engine, db, 1, stock=10, low_stock_threshold=3)
    real_redis.flushdb()
    rebuild(real_engine, db, 1)

    real_engine.reserve(1, 8)  # 2 left, below the threshold of 3

    kinds = [f[b"kind"] for _, f in real_redis.xrange(product_keys(1).outbox) if f[b"event"] == b"product_stock"]
    assert kinds == [b"low_stock"]
