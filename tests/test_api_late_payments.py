"""Slow payments through the webhook: `processing` holds the order, a late success is paid, revived or refunded."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from api.app import create_app
from persistence.deliveries import events_in_order
from persistence.order_reads import get_order
from persistence.refunds import get_refund
from tests.support.api import ADMIN, make_settings, serve, signed
from tests.support.cli import Operator
from workers.drain import MerchantOutbox, drain

pytestmark = pytest.mark.anyio
ORDER_TTL_S = 1
GRACE_S = 30


@pytest.fixture
async def api(operator: Operator, tmp_path: Any) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        operator.redis_url,
        operator.database_url,
        tmp_path,
        FLASHSALE_ORDER_TTL_SECONDS=str(ORDER_TTL_S),
        FLASHSALE_PAYMENT_GRACE_SECONDS=str(GRACE_S),
    )
    async with serve(create_app(settings)) as http:
        response = await http.put(
            "/api/admin/products/1", json={"name": "Sneaker", "price_cents": 1000, "stock": 3}, headers=ADMIN
        )
        assert response.status_code == 201, response.text
        yield http


async def webhook(api: httpx.AsyncClient, order_id: str, txn: str, status: str) -> dict[str, Any]:
    raw, headers = signed({"order_id": order_id, "transaction_id": txn, "status": status})
    response = await api.post("/api/payments/webhook", content=raw, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def new_order(api: httpx.AsyncClient, quantity: int, customer: str) -> dict[str, Any]:
    held = await api.post("/api/holds", json={"product_id": 1, "quantity": quantity, "customer_id": customer})
    assert held.status_code == 201, held.text
    order = await api.post("/api/orders", json={"hold_id": held.json()["hold_id"]})
    assert order.status_code == 201, order.text
    return order.json()  # type: ignore[no-any-return]


async def expire(order: dict[str, Any]) -> None:
    """Wait until the order's TTL has passed (Redis and this machine share the clock)."""
    due = time.mktime(time.strptime(order["expires_at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    await asyncio.sleep(max(0.0, due + 1 - time.time()) + 0.05)


async def invariant(api: httpx.AsyncClient) -> dict[str, int]:
    stats = (await api.get("/api/admin/stats", headers=ADMIN)).json()
    (product,) = stats["products"]
    assert product["total"] == product["available"] + product["held"] + product["pending"] + product["sold"]
    return {k: product[k] for k in ("available", "held", "pending", "sold")}


async def test_processing_holds_the_order_past_its_ttl_then_success_pays_it(api: httpx.AsyncClient) -> None:
    order = await new_order(api, 1, "ann")

    with capture_logs() as logs:
        held = await webhook(api, order["order_id"], "txn-1", "processing")
        again = await webhook(api, order["order_id"], "txn-1", "processing")
    await expire(order)  # past the order's own TTL
    shown = (await api.get(f"/api/orders/{order['order_id']}")).json()
    paid = await webhook(api, order["order_id"], "txn-1", "success")

    assert (held["applied"], held["duplicate"], held["status"]) == (True, False, "pending")
    assert held["expires_at"] > order["expires_at"]
    assert (again["applied"], again["duplicate"], again["expires_at"]) == (False, True, held["expires_at"])
    assert (shown["status"], shown["expires_at"]) == ("pending", held["expires_at"])
    assert (paid["status"], paid["applied"], paid["revived"]) == ("paid", True, False)
    assert await invariant(api) == {"available": 2, "held": 0, "pending": 0, "sold": 1}
    assert [e["order_id"] for e in logs if e["event"] == "payment_processing"] == [order["order_id"]]


async def test_a_late_success_with_stock_left_revives_the_order(api: httpx.AsyncClient, operator: Operator) -> None:
    order = await new_order(api, 2, "ann")
    await expire(order)
    assert (await api.get(f"/api/orders/{order['order_id']}")).json()["status"] == "cancelled"
    outbox = MerchantOutbox(timedelta(hours=1))
    drain(operator.engine, operator.db, merchant=outbox)  # PostgreSQL has it cancelled

    with capture_logs() as logs:
        revived = await webhook(api, order["order_id"], "txn-late", "success")

    assert (revived["status"], revived["applied"], revived["revived"], revived["refund_required"]) == (
        "paid",
        True,
        True,
        False,
    )
    assert await invariant(api) == {"available": 1, "held": 0, "pending": 0, "sold": 2}
    assert [e["order_id"] for e in logs if e["event"] == "order_revived"] == [order["order_id"]]
    shown = (await api.get(f"/api/orders/{order['order_id']}")).json()
    assert (shown["status"], shown["revived"], shown["transaction_id"]) == ("paid", True, "txn-late")

    # Redis ahead of PostgreSQL (paid here, cancelled there) is no lost write, only the outbox not yet drained
    ahead = operator.run("reconcile", "--json")
    assert ahead.exit_code == 0, ahead.output
    assert json.loads(ahead.stdout)["lost_writes"]["total"] == 0

    # PostgreSQL learns the revival; reconcile sees no drift; the merchant hears created, cancelled, revived
    drain(operator.engine, operator.db, merchant=outbox)
    record = get_order(operator.db, order["order_id"])
    assert record is not None
    assert (record.status, record.revived, record.transaction_id) == ("paid", True, "txn-late")
    assert [e.type for e in events_in_order(operator.db)] == ["order.created", "order.cancelled", "order.revived"]
    reconciled = operator.run("reconcile", "--json")
    assert reconciled.exit_code == 0, reconciled.output
    assert json.loads(reconciled.stdout)["consistent"] is True


async def test_a_late_success_without_stock_is_refunded_then_confirmed(
    api: httpx.AsyncClient, operator: Operator
) -> None:
    order = await new_order(api, 2, "ann")
    await expire(order)
    await new_order(api, 2, "bob")  # its units went to someone else

    late = await webhook(api, order["order_id"], "txn-late", "success")
    drain(operator.engine, operator.db)
    refund = get_refund(operator.db, "txn-late")
    refunded = await webhook(api, order["order_id"], "txn-late", "refunded")

    assert (late["status"], late["applied"], late["revived"], late["refund_required"]) == (
        "cancelled",
        False,
        False,
        True,
    )
    assert refund is not None
    assert (refund.status, refund.reason, refund.order_id) == ("requested", "expired", order["order_id"])
    assert (refunded["refund_status"], refunded["applied"]) == ("confirmed", True)
    assert await invariant(api) == {"available": 1, "held": 0, "pending": 2, "sold": 0}
    assert json.loads(operator.run("refunds", "--json").stdout)["count"] == 0
