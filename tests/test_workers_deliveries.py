"""The merchant's events: made by the drain from what it committed, delivered at least once, signed, in order."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from api.responses import order_body
from engine import Engine
from persistence.deliveries import counts, events_in_order
from tests.support.cli import Operator
from tests.support.merchant import MERCHANT_SECRET, Receiver, merchant
from tests.support.sales import add_product
from workers.deliveries import Policy, backoff, deliver_round
from workers.drain import MerchantOutbox, drain

OUTBOX = MerchantOutbox(timedelta(hours=24))
ROUNDS = 400
WORKER = [str(Path(sys.executable).with_name("flashsale")), "worker"]


def _sale(engine: Engine) -> dict[str, list[str]]:
    """Orders of every kind; the merchant event types each order must announce, in order."""
    paid = engine.convert(engine.reserve(1, 1, customer_id="ann").hold_id)
    engine.settle(paid.order_id, "pay_A", "success")
    engine.settle(paid.order_id, "pay_A2", "success")  # a second charge: a refund request
    cancelled = engine.convert(engine.reserve(1, 2, customer_id="bob").hold_id)
    engine.cancel(cancelled.order_id)
    failed = engine.convert(engine.reserve(1, 1, customer_id="cy").hold_id)
    engine.settle(failed.order_id, "pay_C", "failed")
    pending = engine.convert(engine.reserve(1, 1, customer_id="di").hold_id)
    return {
        paid.order_id: ["order.created", "order.paid", "refund.requested"],
        cancelled.order_id: ["order.created", "order.cancelled"],
        failed.order_id: ["order.created", "order.cancelled"],
        pending.order_id: ["order.created"],
    }


def _deliver_all(db: sa.Engine, policy: Policy) -> int:
    """Delivery rounds until nothing is pending; returns the rounds it took (bounded, never timed)."""
    for rounds in range(1, ROUNDS + 1):
        deliver_round(db, policy)
        if counts(db)["pending"] == 0:
            return rounds
        time.sleep(0.01)
    raise AssertionError(f"events still pending after {ROUNDS} rounds: {counts(db)}")


def test_every_event_arrives_once_in_order_and_signed_through_errors_and_timeouts(
    real_engine: Engine, db: sa.Engine
) -> None:
    add_product(real_engine, db, 1, stock=10)
    expected = _sale(real_engine)
    drain(real_engine, db, merchant=OUTBOX)
    written = events_in_order(db)

    with merchant(Receiver(errors=4, hangs=2, hang_seconds=0.5)) as receiver, capture_logs() as logs:
        _deliver_all(db, Policy(receiver.url, MERCHANT_SECRET, timeout=0.2, base=0.01, cap=0.05))

    assert receiver.bad_signatures == 0
    assert receiver.requests > len(written)  # the 500s and the timeouts were retried
    assert {e["id"] for e in receiver.accepted} == {e.id for e in written}
    by_order: dict[str, list[str]] = defaultdict(list)
    for event in receiver.accepted:
        assert set(event) == {"id", "type", "created_at", "data"}
        by_order[event["data"]["order_id"]].append(event["type"])
    assert dict(by_order) == expected
    cancelled = [e["data"] for e in receiver.accepted if e["type"] == "order.cancelled"]
    assert sorted(d["cancel_reason"] for d in cancelled) == ["cancelled", "payment_failed"]
    refund = next(e["data"] for e in receiver.accepted if e["type"] == "refund.requested")
    assert (refund["transaction_id"], refund["reason"], refund["paid_by"]) == ("pay_A2", "already_paid", "pay_A")
    assert counts(db) == {"pending": 0, "delivered": len(written), "failed": 0}
    tags = {entry["event"] for entry in logs}
    assert {"merchant_delivery_failed", "merchant_event_delivered"} <= tags


def test_a_merchant_event_carries_each_order_exactly_as_the_api_answers_it(real_engine: Engine, db: sa.Engine) -> None:
    add_product(real_engine, db, 1, stock=10)
    orders = _sale(real_engine)
    drain(real_engine, db, merchant=OUTBOX)

    last: dict[str, dict[str, object]] = {}
    for event in events_in_order(db):
        data = json.loads(event.body)["data"]
        if event.type.startswith("order."):
            last[data["order_id"]] = data

    assert set(last) == set(orders)
    for order_id, data in last.items():
        assert data == msgspec.to_builtins(order_body(real_engine.order(order_id)))


def test_a_replayed_drain_batch_makes_no_event_twice(
    real_engine: Engine, db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_product(real_engine, db, 1, stock=10)
    _sale(real_engine)

    # Given a drain that commits its batch and dies before XDEL
    def die(*_: object) -> None:
        raise SystemExit("killed after commit")

    with monkeypatch.context() as patch:
        patch.setattr(real_engine, "ack_outbox", die)
        with pytest.raises(SystemExit):
            drain(real_engine, db, merchant=OUTBOX)
    first = [(e.type, e.stream) for e in events_in_order(db)]

    # When the next drain applies the same entries again
    drain(real_engine, db, merchant=OUTBOX)

    assert [(e.type, e.stream) for e in events_in_order(db)] == first
    assert len(first) == 8


def test_without_a_merchant_the_drain_records_no_event(real_engine: Engine, db: sa.Engine) -> None:
    add_product(real_engine, db, 1, stock=10)
    _sale(real_engine)

    drain(real_engine, db)

    assert events_in_order(db) == []


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    low = [backoff(n, 1.0, 60.0, lambda a, b: a) for n in range(1, 9)]
    high = [backoff(n, 1.0, 60.0, lambda a, b: b) for n in range(1, 9)]

    assert low == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert high == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


def test_an_event_past_its_deadline_is_dead_lettered_listed_and_retried(operator: Operator) -> None:
    engine, db = operator.engine, operator.db
    add_product(engine, db, 1, stock=10)
    engine.convert(engine.reserve(1, 1).hold_id)
    drain(engine, db, merchant=MerchantOutbox(timedelta(seconds=0)))  # due and overdue at once

    with merchant(Receiver(errors=1000)) as refusing, capture_logs() as logs:
        result = deliver_round(db, Policy(refusing.url, MERCHANT_SECRET, timeout=0.2))
    assert result.dead_lettered == 1
    assert [e["event"] for e in logs if e["event"] == "merchant_event_dead_lettered"] == [
        "merchant_event_dead_lettered"
    ]
    failed = operator.run("deliveries", "--failed", "--json")
    listed = json.loads(failed.stdout)
    assert failed.exit_code == 1
    assert [d["type"] for d in listed["deliveries"]] == ["order.created"]
    assert listed["counts"] == {"pending": 0, "delivered": 0, "failed": 1}
    event_id = listed["deliveries"][0]["id"]

    retried = operator.run("deliveries", "retry", "--all-failed")
    assert retried.exit_code == 0, retried.output
    with merchant(Receiver()) as accepting:
        _deliver_all(db, Policy(accepting.url, MERCHANT_SECRET, timeout=0.2))
    assert [e["id"] for e in accepting.accepted] == [event_id]
    assert operator.run("deliveries", "--failed").exit_code == 0
    assert operator.run("deliveries", "retry", event_id).exit_code == 1  # delivered: nothing to retry


def test_a_delivery_worker_killed_mid_delivery_loses_no_event(
    operator: Operator, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, db = operator.engine, operator.db
    add_product(engine, db, 1, stock=10)
    expected = _sale(engine)
    drain(engine, db, merchant=OUTBOX)
    written = {e.id for e in events_in_order(db)}

    with merchant(Receiver(hangs=1, hang_seconds=60)) as receiver:
        # Given a delivery worker stuck in its first POST (the merchant does not answer), killed there
        monkeypatch.setenv("FLASHSALE_MERCHANT_WEBHOOK_URL", receiver.url)
        monkeypatch.setenv("FLASHSALE_MERCHANT_WEBHOOK_SECRET", MERCHANT_SECRET)
        monkeypatch.setenv("FLASHSALE_MERCHANT_TIMEOUT_SECONDS", "0.5")
        worker = subprocess.Popen(
            [*WORKER, "--deliveries", "--burst"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            assert receiver.hanging.wait(60), "the worker never sent an event"
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.communicate(timeout=60)
        assert counts(db)["delivered"] < len(written)

        # When the events are delivered again, by whoever comes next (its lease lapses)
        _deliver_all(db, Policy(receiver.url, MERCHANT_SECRET, timeout=0.5))

    # Then every event arrived, each order's in order
    assert {e["id"] for e in receiver.accepted} == written
    by_order: dict[str, list[str]] = defaultdict(list)
    for event in receiver.accepted:
        by_order[event["data"]["order_id"]].append(event["type"])
    assert dict(by_order) == expected
