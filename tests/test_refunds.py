"""Refunds are work: a request per charge no order took, requested → sent → confirmed by a `refunded` webhook."""

from __future__ import annotations

import json

import httpx
import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from engine import Engine
from persistence.refunds import get_refund, refunds
from reconciliation.repair import drain_to_end
from tests.support.api import assert_problem, signed
from tests.support.cli import Operator
from tests.support.database import count_rows
from tests.support.sales import add_product


def _second_charge(engine: Engine, db: sa.Engine) -> str:
    """An order paid twice: the second charge, drained, is a refund request."""
    add_product(engine, db, 1, stock=10)
    order = engine.convert(engine.reserve(1, 1, customer_id="carol").hold_id)
    engine.settle(order.order_id, "pay_FIRST", "success")
    engine.settle(order.order_id, "pay_SECOND", "success")
    return order.order_id


def test_the_drain_records_one_refund_request_per_charge_no_order_took(real_engine: Engine, db: sa.Engine) -> None:
    order_id = _second_charge(real_engine, db)
    cancelled = real_engine.convert(real_engine.reserve(1, 2, customer_id="dave").hold_id)
    real_engine.cancel(cancelled.order_id)
    real_engine.settle(cancelled.order_id, "pay_LATE", "success")
    real_engine.settle(cancelled.order_id, "pay_DECLINED", "failed")  # charged nothing: no refund

    with capture_logs() as logs:
        drain_to_end(real_engine, db)
    drain_to_end(real_engine, db)  # nothing new: a replay records nothing twice

    found = {r.transaction_id: r for r in refunds(db)}
    assert set(found) == {"pay_SECOND", "pay_LATE"}
    second = found["pay_SECOND"]
    assert (second.order_id, second.reason, second.paid_by, second.status, second.amount_cents) == (
        order_id,
        "already_paid",
        "pay_FIRST",
        "requested",
        250,
    )
    assert (found["pay_LATE"].reason, found["pay_LATE"].amount_cents) == ("cancelled", 500)
    assert count_rows(db, "refund_requests") == 2
    assert sorted(e["transaction_id"] for e in logs if e["event"] == "refund_requested") == ["pay_LATE", "pay_SECOND"]


def test_a_refunded_webhook_confirms_the_request_once(operator: Operator, live_api: str) -> None:
    order_id = _second_charge(operator.engine, operator.db)
    drain_to_end(operator.engine, operator.db)
    sent = operator.run("refunds", "sent", "pay_SECOND")
    assert sent.exit_code == 0, sent.output
    assert get_refund(operator.db, "pay_SECOND").status == "sent"  # type: ignore[union-attr]

    body = {"order_id": order_id, "transaction_id": "pay_SECOND", "status": "refunded", "refund_id": "re_1"}
    with httpx.Client(base_url=live_api) as http, capture_logs() as logs:
        first = http.post("/api/payments/webhook", content=signed(body)[0], headers=signed(body)[1])
        again = http.post("/api/payments/webhook", content=signed(body)[0], headers=signed(body)[1])
        other_order = {**body, "order_id": "o1_01JD0Z3N5W8YQ2T4V6X8Z0A1B2"}
        wrong = http.post("/api/payments/webhook", content=signed(other_order)[0], headers=signed(other_order)[1])
        never = {**body, "transaction_id": "pay_FIRST"}
        unknown = http.post("/api/payments/webhook", content=signed(never)[0], headers=signed(never)[1])

    assert first.status_code == 200, first.text
    assert first.json() | {"order_id": order_id} == {
        "order_id": order_id,
        "transaction_id": "pay_SECOND",
        "status": "paid",
        "applied": True,
        "duplicate": False,
        "refund_required": True,
        "revived": False,
        "refund_status": "confirmed",
    }
    assert (again.json()["applied"], again.json()["duplicate"]) == (False, True)
    assert_problem(wrong, 404, "refund_not_found")
    assert_problem(unknown, 404, "refund_not_found")
    refund = get_refund(operator.db, "pay_SECOND")
    assert refund is not None
    assert (refund.status, refund.confirmed_at is not None) == ("confirmed", True)
    assert [e["transaction_id"] for e in logs if e["event"] == "refund_confirmed"] == ["pay_SECOND"]
    assert refunds(operator.db) == []  # nothing open any more
    assert json.loads(operator.run("refunds", "--json").stdout)["count"] == 0


def test_refunds_sent_names_an_unknown_charge_with_exit_1(operator: Operator) -> None:
    result = operator.run("refunds", "sent", "pay_NEVER")

    assert result.exit_code == 1
    assert "refund_not_found" in result.stderr


@pytest.mark.parametrize("status", ["requested", "sent"])
def test_refunds_lists_requests_still_open_with_their_status(operator: Operator, status: str) -> None:
    _second_charge(operator.engine, operator.db)
    drain_to_end(operator.engine, operator.db)
    if status == "sent":
        operator.run("refunds", "sent", "pay_SECOND")

    listed = json.loads(operator.run("refunds", "--json").stdout)

    assert [(r["transaction_id"], r["status"]) for r in listed["refunds"]] == [("pay_SECOND", status)]
