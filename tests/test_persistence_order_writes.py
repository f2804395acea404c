"""Applying outbox events: idempotent, monotonic, in any order, one transaction per batch."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from engine import Engine
from engine.types import OutboxEvent
from persistence.exceptions import MalformedEvent
from persistence.order_reads import get_order, get_payment
from persistence.order_writes import apply_events, batch_rows
from tests.support.clock import clocked_engine
from tests.support.database import count_rows, processing_transactions
from tests.support.sales import add_product

ORDER = "o7_01JD0Z3N5W8YQ2T4V6X8Z0A1B2"
HOLD = "h7_01JD0Z3N5W8YQ2T4V6X8Z0A1B3"


def order_event(
    event: str, status: str = "pending", *, note: str = "", at: int = 1_000, entry: str = "1-0", **extra: str
) -> OutboxEvent:
    fields = {
        "event": event,
        "at": str(at),
        "order_id": ORDER,
        "product_id": "7",
        "hold_id": HOLD,
        "customer_id": "alice",
        "quantity": "2",
        "amount_cents": "500",
        "status": status,
        "created_ms": "1000",
        "expires_ms": "901000",
        "closed_ms": "0" if status == "pending" else str(at),
        "note": note,
        **extra,
    }
    return OutboxEvent(7, entry, event, fields)


def created(at: int = 1_000) -> OutboxEvent:
    return order_event("order_created", at=at)


def paid(txn: str = "txn-1", at: int = 2_000) -> list[OutboxEvent]:
    return [
        order_event("order_paid", "paid", note=txn, at=at),
        order_event(
            "payment", "paid", note=txn, at=at, transaction_id=txn, result="success", applied="1", payload='{"ok": 1}'
        ),
    ]


@pytest.fixture
def product(real_engine: Engine, db: sa.Engine) -> int:
    add_product(real_engine, db, 7)
    return 7


@pytest.mark.usefixtures("product")
def test_order_created_inserts_a_pending_order(db: sa.Engine) -> None:
    apply_events(db, [created()])

    order = get_order(db, ORDER)
    assert order is not None
    assert (order.status, order.quantity, order.amount_cents, order.customer_id) == ("pending", 2, 500, "alice")
    assert order.expires_at_ms == 901_000


@pytest.mark.usefixtures("product")
def test_applying_a_batch_twice_writes_nothing_the_second_time(db: sa.Engine) -> None:
    batch = [created(), *paid()]
    first = apply_events(db, batch)
    second = apply_events(db, batch)

    assert (first.orders_written, first.payments_written) == (1, 1)
    assert (second.orders_written, second.payments_written) == (0, 0)
    assert (count_rows(db, "orders"), count_rows(db, "payments")) == (1, 1)


@pytest.mark.usefixtures("product")
def test_a_late_pending_snapshot_never_overwrites_paid(db: sa.Engine) -> None:
    apply_events(db, [created(), *paid()])
    apply_events(db, [created(at=5_000)])

    order = get_order(db, ORDER)
    assert order is not None
    assert (order.status, order.transaction_id) == ("paid", "txn-1")


@pytest.mark.usefixtures("product")
def test_a_final_status_never_changes_again(db: sa.Engine) -> None:
    apply_events(db, [order_event("order_cancelled", "cancelled", note="expired", at=3_000)])
    apply_events(db, paid(at=4_000)[:1])

    order = get_order(db, ORDER)
    assert order is not None
    assert (order.status, order.cancel_reason, order.transaction_id) == ("cancelled", "expired", None)


@pytest.mark.usefixtures("product")
def test_payment_drained_before_order_created_still_ends_paid_with_the_payment(db: sa.Engine) -> None:
    # Given the payment's batch arrives first (a reordered stream), then the order_created batch
    apply_events(db, paid()[1:])
    apply_events(db, [created()])

    order, payment = get_order(db, ORDER), get_payment(db, "txn-1")
    assert order is not None
    assert payment is not None
    assert (order.status, order.transaction_id) == ("paid", "txn-1")
    assert (payment.order_id, payment.status, payment.applied, payment.payload) == (ORDER, "success", True, {"ok": 1})


@pytest.mark.usefixtures("product")
def test_reordered_events_within_one_batch_keep_the_most_advanced_snapshot(db: sa.Engine) -> None:
    apply_events(db, [*reversed(paid()), created()])

    order = get_order(db, ORDER)
    assert order is not None
    assert order.status == "paid"


@pytest.mark.usefixtures("product")
def test_a_duplicate_transaction_id_is_absorbed(db: sa.Engine) -> None:
    apply_events(db, [created(), *paid("txn-1")])
    late = order_event("payment", "paid", note="txn-1", at=9_000, transaction_id="txn-1", result="failed", applied="0")
    result = apply_events(db, [late, late])

    payment = get_payment(db, "txn-1")
    assert payment is not None
    assert (payment.status, result.payments_written, count_rows(db, "payments")) == ("success", 0, 1)


@pytest.mark.usefixtures("product")
def test_a_payload_that_is_not_json_is_kept_as_a_string(db: sa.Engine) -> None:
    event = order_event(
        "payment", "cancelled", note="payment_failed", transaction_id="t", result="failed", applied="1", payload="{oops"
    )
    apply_events(db, [event])

    payment = get_payment(db, "t")
    assert payment is not None
    assert payment.payload == "{oops"


@pytest.mark.usefixtures("product")
@pytest.mark.parametrize("payload", ['{"note": "a\\u0000b"}', '{"note": "a\x00b"', "a\x00b"])
def test_a_payload_with_nul_is_stored_without_jamming_the_drain(db: sa.Engine, payload: str) -> None:
    event = order_event("payment", "paid", note="t", transaction_id="t", result="success", applied="1", payload=payload)
    apply_events(db, [event])

    payment = get_payment(db, "t")
    assert payment is not None
    assert "\x00" not in str(payment.payload)
    assert "\ufffd" in str(payment.payload)


@pytest.mark.usefixtures("product")
def test_hold_expired_events_write_no_row(db: sa.Engine) -> None:
    expired = OutboxEvent(7, "1-0", "hold_expired", {"event": "hold_expired", "hold_id": HOLD, "quantity": "1"})
    result = apply_events(db, [expired])

    assert (result.hold_expired, count_rows(db, "orders")) == (1, 0)


@pytest.mark.usefixtures("product")
def test_a_failing_batch_writes_nothing(db: sa.Engine) -> None:
    unknown_product = OutboxEvent(
        8, "2-0", "order_created", {**created().fields, "product_id": "8", "order_id": "o8_x"}
    )
    with pytest.raises(sa.exc.IntegrityError):
        apply_events(db, [created(), unknown_product])

    assert count_rows(db, "orders") == 0


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"status": "shipped"}, "status"),
        ({"quantity": "two"}, "quantity"),
        ({"note": "bored", "status": "cancelled"}, "cancel reason"),
    ],
)
def test_malformed_events_are_refused_with_their_entry(change: dict[str, str], reason: str) -> None:
    event = created()
    bad = OutboxEvent(7, "5-1", event.event, {**event.fields, **change})
    with pytest.raises(MalformedEvent, match=reason) as error:
        batch_rows([bad])
    assert (error.value.entry_id, error.value.code) == ("5-1", "malformed_event")


def test_unknown_event_types_are_refused_rather_than_dropped() -> None:
    with pytest.raises(MalformedEvent, match="unknown event"):
        batch_rows([OutboxEvent(7, "1-0", "order_shipped", {})])


def test_a_batch_gives_one_row_per_order_and_per_transaction() -> None:
    rows = batch_rows([created(), *paid(), *paid(), created(at=9_000)])

    assert [(o["id"], o["status"]) for o in rows.orders] == [(ORDER, "paid")]
    assert [p["transaction_id"] for p in rows.payments] == ["txn-1"]
    assert (rows.reused, rows.hold_expired) == ([], 0)


OTHER_ORDER = "o8_01JD0Z3N5W8YQ2T4V6X8Z0A1C2"
OTHER_HOLD = "h8_01JD0Z3N5W8YQ2T4V6X8Z0A1C3"


def paid_other(txn: str = "txn-1", at: int = 3_000) -> list[OutboxEvent]:
    """Order 8's payment, by a transaction id that may already have paid order 7."""
    return [
        OutboxEvent(8, e.id, e.event, {**e.fields, "order_id": OTHER_ORDER, "hold_id": OTHER_HOLD, "product_id": "8"})
        for e in paid(txn, at)
    ]


def conflict_rows(db: sa.Engine) -> list[tuple[str, str, str, int, bool]]:
    with db.connect() as connection:
        statement = sa.text(
            "SELECT transaction_id, order_id, recorded_order_id, product_id, applied FROM payment_conflicts"
        )
        return [tuple(row) for row in connection.execute(statement)]  # type: ignore[misc]


@pytest.fixture
def two_products(real_engine: Engine, db: sa.Engine) -> None:
    add_product(real_engine, db, 7)
    add_product(real_engine, db, 8)


@pytest.mark.usefixtures("two_products")
def test_a_payment_whose_transaction_id_postgresql_holds_for_another_order_is_stored_as_a_conflict(
    db: sa.Engine,
) -> None:
    apply_events(db, [created(), *paid("txn-1")])

    applied = apply_events(db, paid_other("txn-1"))

    assert [(c.transaction_id, c.order_id, c.recorded_order_id, c.product_id) for c in applied.conflicts] == [
        ("txn-1", OTHER_ORDER, ORDER, 8)
    ]
    assert conflict_rows(db) == [("txn-1", OTHER_ORDER, ORDER, 8, True)]
    recorded = get_payment(db, "txn-1")
    assert recorded is not None
    assert recorded.order_id == ORDER
    other = get_order(db, OTHER_ORDER)
    assert other is not None
    assert other.status == "paid"


@pytest.mark.usefixtures("two_products")
def test_a_replayed_conflict_is_stored_and_reported_once(db: sa.Engine) -> None:
    apply_events(db, [created(), *paid("txn-1")])
    first = apply_events(db, paid_other("txn-1"))

    again = apply_events(db, paid_other("txn-1"))

    assert (len(first.conflicts), len(again.conflicts)) == (1, 0)
    assert len(conflict_rows(db)) == 1


@pytest.mark.usefixtures("two_products")
def test_two_orders_reusing_a_transaction_id_within_one_batch_keep_the_first_and_store_the_second(
    db: sa.Engine,
) -> None:
    applied = apply_events(db, [created(), *paid("txn-1"), *paid_other("txn-1")])

    assert applied.payments_written == 1
    assert [(c.order_id, c.recorded_order_id) for c in applied.conflicts] == [(OTHER_ORDER, ORDER)]
    assert conflict_rows(db) == [("txn-1", OTHER_ORDER, ORDER, 8, True)]


@pytest.mark.usefixtures("product")
def test_the_same_payment_twice_is_no_conflict(db: sa.Engine) -> None:
    apply_events(db, [created(), *paid("txn-1")])

    assert apply_events(db, [*paid("txn-1"), *paid("txn-1")]).conflicts == ()
    assert conflict_rows(db) == []


@pytest.mark.usefixtures("product")
def test_a_payment_flagged_for_refund_is_stored_with_its_flag(db: sa.Engine) -> None:
    second = order_event(
        "payment",
        "paid",
        note="txn-1",
        at=3_000,
        transaction_id="txn-2",
        result="success",
        applied="0",
        refund_required="1",
        entry="3-0",
    )
    apply_events(db, [created(), *paid("txn-1"), second])

    flags = {t: (p.applied, p.refund_required) for t in ("txn-1", "txn-2") if (p := get_payment(db, t))}
    assert flags == {"txn-1": (True, False), "txn-2": (False, True)}


@pytest.mark.usefixtures("product")
def test_a_payment_event_from_before_the_refund_flag_gets_it_from_its_outcome(db: sa.Engine) -> None:
    late = order_event(
        "payment", "cancelled", note="expired", at=3_000, transaction_id="txn-late", result="success", applied="0"
    )
    apply_events(db, [created(), late])

    recorded = get_payment(db, "txn-late")
    assert recorded is not None
    assert recorded.refund_required


@pytest.mark.usefixtures("product")
def test_engine_events_round_trip_every_field(real_engine: Engine, db: sa.Engine) -> None:
    hold = real_engine.reserve(7, 3, customer_id="bob")
    order = real_engine.convert(hold.hold_id)
    settlement = real_engine.settle(order.order_id, "txn-9", "success", '{"amount": 750}')
    apply_events(db, real_engine.read_outbox(7))

    record = get_order(db, order.order_id)
    assert record == settlement.order
    assert record.hold_id == hold.hold_id
    assert (record.quantity, record.amount_cents, record.customer_id) == (3, 750, "bob")
    assert record.closed_at_ms is not None


def test_a_success_just_after_expiry_is_stored_revived_when_the_whole_sequence_drains_in_one_batch(
    db: sa.Engine,
) -> None:
    # settle finds the order expired but not yet reaped: in one script it cancels it (expired) and revives it,
    # both events at the same Redis millisecond, then the payment event; the drain reads all three at once.
    with clocked_engine(order_ttl_ms=60_000) as (engine, clock):
        add_product(engine, db, 7, stock=10)
        order = engine.convert(engine.reserve(7, 2, customer_id="ann").hold_id)
        clock.advance(60_001)
        settlement = engine.settle(order.order_id, "txn-late", "success")
        assert (settlement.applied, settlement.revived) == (True, True)
        events = engine.read_outbox(7)
        assert [e.event for e in events][-3:] == ["order_cancelled", "order_revived", "payment"]
        apply_events(db, events)

    record = get_order(db, order.order_id)
    assert record is not None
    assert (record.status, record.transaction_id, record.revived) == ("paid", "txn-late", True)


def processing(txn: str, at: int = 1_500, expires_ms: int = 901_000) -> OutboxEvent:
    event = order_event("payment_processing", note=txn, at=at, transaction_id=txn)
    return OutboxEvent(7, event.id, event.event, {**event.fields, "expires_ms": str(expires_ms)})


@pytest.mark.usefixtures("product")
@pytest.mark.parametrize("batches", ["one batch", "one batch reversed", "one event a batch"])
def test_the_transaction_that_used_the_payment_grace_is_kept_once_the_order_is_paid(
    db: sa.Engine, batches: str
) -> None:
    # The grace did not move the expiry (901000 both times): the transaction is still written (issue 17)
    events = [created(), processing("txn-p"), *paid("txn-p")]
    if batches == "one batch":
        apply_events(db, events)
    elif batches == "one batch reversed":
        apply_events(db, list(reversed(events)))
    else:
        for event in events:
            apply_events(db, [event])
    apply_events(db, [processing("txn-later", at=1_800, expires_ms=999_000)])  # never replaces the first

    assert processing_transactions(db) == {ORDER: "txn-p"}
    order = get_order(db, ORDER)
    assert order is not None
    assert order.status == "paid"
