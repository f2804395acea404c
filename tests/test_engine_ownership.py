"""The owner argument of hold_status, release, convert, order_status and cancel: another buyer's hold or order
answers as if it did not exist and stays as it is (checked inside the script); on fakeredis, Redis and a cluster."""

from __future__ import annotations

import pytest

from engine import Engine
from engine.exceptions import HoldNotFound, OrderNotFound


def test_a_hold_answers_only_its_owner_and_anyone_when_no_owner_is_named(engine: Engine) -> None:
    engine.set_stock(1, 10)
    hold = engine.reserve(1, 2, customer_id="alice")
    before = engine.snapshot(1)

    for call in (
        lambda: engine.hold(hold.hold_id, owner="bob"),
        lambda: engine.release(hold.hold_id, owner="bob"),
        lambda: engine.convert(hold.hold_id, owner="bob"),
    ):
        with pytest.raises(HoldNotFound):
            call()

    after = engine.snapshot(1)
    assert (after.available, after.held, after.pending) == (before.available, before.held, before.pending)
    assert engine.hold(hold.hold_id, owner="alice").status == "active"
    assert engine.hold(hold.hold_id).status == "active"  # buyer auth off: anyone
    order = engine.convert(hold.hold_id, owner="alice")
    assert order.customer_id == "alice"


def test_an_order_answers_only_its_owner(engine: Engine) -> None:
    engine.set_stock(1, 10)
    order = engine.convert(engine.reserve(1, 1, customer_id="alice").hold_id)

    with pytest.raises(OrderNotFound):
        engine.order(order.order_id, owner="bob")
    with pytest.raises(OrderNotFound):
        engine.cancel(order.order_id, owner="bob")

    assert engine.order(order.order_id, owner="alice").status == "pending"
    assert engine.snapshot(1).pending == 1
    assert engine.cancel(order.order_id, owner="alice").order.status == "cancelled"


def test_a_hold_without_a_customer_belongs_to_no_verified_buyer(engine: Engine) -> None:
    engine.set_stock(1, 10)
    hold = engine.reserve(1, 1)
    with pytest.raises(HoldNotFound):
        engine.release(hold.hold_id, owner="alice")
    assert engine.snapshot(1).held == 1
