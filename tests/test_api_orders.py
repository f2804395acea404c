"""POST /api/orders, GET /api/orders/{id} and POST /api/orders/{id}/cancel, against real Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import datetime

import httpx
import pytest
import sqlalchemy as sa

from api.routes.orders import idempotent_order_id
from engine import Engine
from engine.ids import parse_id
from engine.keys import product_keys
from persistence.catalog import ProductSpec, put_product
from persistence.order_writes import apply_events
from tests.support.api import assert_problem, hold, order, signed

pytestmark = pytest.mark.anyio

UNKNOWN_ORDER = "o1_01JD0Z3N5W8YQ2T4V6X8Z0A1B2"


async def test_order_from_a_hold_is_pending_and_priced(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    engine_sync.set_stock(1, 10, price_cents=1250)
    held = await hold(client, 1, 3, customer_id="alice")

    response = await client.post("/api/orders", json={"hold_id": held["hold_id"]})

    assert response.status_code == 201
    body = response.json()
    assert body["order_id"].startswith("o1_")
    assert (body["hold_id"], body["product_id"], body["customer_id"]) == (held["hold_id"], 1, "alice")
    assert (body["quantity"], body["amount_cents"], body["status"]) == (3, 3750, "pending")
    created, expires = datetime.fromisoformat(body["created_at"]), datetime.fromisoformat(body["expires_at"])
    assert (expires - created).total_seconds() == 900  # FLASHSALE_ORDER_TTL_SECONDS default
    snapshot = engine_sync.snapshot(1)
    assert (snapshot.held, snapshot.pending) == (0, 3)


async def test_second_convert_of_a_hold_is_409(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    engine_sync.set_stock(1, 10)
    held = await hold(client, 1)
    first = await client.post("/api/orders", json={"hold_id": held["hold_id"]})
    second = await client.post("/api/orders", json={"hold_id": held["hold_id"]})
    body = assert_problem(second, 409, "hold_already_used")
    assert body["order_id"] == first.json()["order_id"]
    assert engine_sync.snapshot(1).pending == 1


async def test_idempotency_key_replays_the_first_order(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    engine_sync.set_stock(1, 10, price_cents=100)
    held = await hold(client, 1, 2)
    request = {"hold_id": held["hold_id"]}

    first = await client.post("/api/orders", json=request, headers={"Idempotency-Key": "pay-1"})
    again = await client.post("/api/orders", json=request, headers={"Idempotency-Key": "pay-1"})
    other_key = await client.post("/api/orders", json=request, headers={"Idempotency-Key": "pay-2"})
    no_key = await client.post("/api/orders", json=request)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert_problem(other_key, 409, "hold_already_used")
    assert_problem(no_key, 409, "hold_already_used")
    assert engine_sync.snapshot(1).pending == 2


async def test_an_order_idempotency_key_reaches_only_the_callers_own_hold(
    client: httpx.AsyncClient, engine_sync: Engine
) -> None:
    engine_sync.set_stock(1, 10)
    alice_hold = await hold(client, 1, 1, customer_id="alice")
    mallory_hold = await hold(client, 1, 2, customer_id="mallory")
    headers = {"Idempotency-Key": "checkout-1"}
    alice = (await client.post("/api/orders", json={"hold_id": alice_hold["hold_id"]}, headers=headers)).json()

    # When Mallory converts his own hold with Alice's key, and retries
    mallory = await client.post("/api/orders", json={"hold_id": mallory_hold["hold_id"]}, headers=headers)
    again = await client.post("/api/orders", json={"hold_id": mallory_hold["hold_id"]}, headers=headers)

    # Then the order is his, from his hold, and carries nothing of Alice's
    assert (mallory.status_code, again.status_code) == (201, 201)
    assert again.json() == mallory.json()
    body = mallory.json()
    assert (body["hold_id"], body["customer_id"], body["quantity"]) == (mallory_hold["hold_id"], "mallory", 2)
    for trace in (alice["order_id"], alice["hold_id"], "alice"):
        assert trace.split("_")[-1] not in mallory.text
    # and Alice's retry still replays hers
    replayed = await client.post("/api/orders", json={"hold_id": alice_hold["hold_id"]}, headers=headers)
    assert replayed.json() == alice
    assert engine_sync.snapshot(1).pending == 3


async def test_concurrent_converts_with_one_key_make_one_order(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    engine_sync.set_stock(1, 10)
    held = await hold(client, 1)
    responses = await asyncio.gather(
        *(
            client.post("/api/orders", json={"hold_id": held["hold_id"]}, headers={"Idempotency-Key": "same"})
            for _ in range(20)
        )
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["order_id"] for r in responses}) == 1
    assert engine_sync.snapshot(1).pending == 1


def test_idempotent_order_id_is_stable_per_hold_and_key() -> None:
    hold_id = "h7_01JD0Z3N5W8YQ2T4V6X8Z0A1B2"
    first = idempotent_order_id(hold_id, "k1")
    assert first == idempotent_order_id(hold_id, "k1")
    assert first != idempotent_order_id(hold_id, "k2")
    assert first != idempotent_order_id("h7_01JD0Z3N5W8YQ2T4V6X8Z0A1B3", "k1")
    parsed = parse_id(first, "order")
    assert parsed.product_id == 7
    assert parsed.ulid[:10] == "01JD0Z3N5W"  # the hold's creation time


@pytest.mark.parametrize("key", [None, "k"])
@pytest.mark.parametrize("hold_id", ["h1_01JD0Z3N5W8YQ2T4V6X8Z0A1B2", "h159218_ZM8KAEWT1FNEV60JD4M84GA0X7"])
async def test_order_from_an_unknown_hold_is_404(
    client: httpx.AsyncClient, engine_sync: Engine, hold_id: str, key: str | None
) -> None:
    engine_sync.set_stock(1, 10)
    headers = {"Idempotency-Key": key} if key else {}
    response = await client.post("/api/orders", json={"hold_id": hold_id}, headers=headers)
    assert_problem(response, 404, "hold_not_found")


async def test_order_from_a_released_hold_is_410(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    engine_sync.set_stock(1, 10)
    held = await hold(client, 1)
    await client.delete(f"/api/holds/{held['hold_id']}")
    response = await client.post("/api/orders", json={"hold_id": held["hold_id"]})
    assert_problem(response, 410, "hold_released")


@pytest.mark.parametrize(
    "body",
    [{}, {"hold_id": 5}, {"hold_id": "o1_01JD0Z3N5W8YQ2T4V6X8Z0A1B2"}, {"hold_id": "h1_x"}, {"hold_id": "h" * 500}],
)
async def test_order_with_a_bad_hold_id_is_422(client: httpx.AsyncClient, body: dict[str, object]) -> None:
    problem = assert_problem(await client.post("/api/orders", json=body), 422, "validation_error")
    assert problem["errors"][0]["field"] == "hold_id"


async def test_order_body_that_is_not_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/orders", content=b"hold_id=1", headers={"Content-Type": "application/json"})
    assert_problem(response, 400, "invalid_json")


async def test_get_order_is_served_from_the_engine_before_any_worker_ran(
    client: httpx.AsyncClient, engine_sync: Engine, db: sa.Engine
) -> None:
    engine_sync.set_stock(1, 10, price_cents=500)
    created = await order(client, 1, 2)

    response = await client.get(f"/api/orders/{created['order_id']}")

    assert response.status_code == 200
    assert response.json() == created
    with db.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM orders")).scalar_one() == 0


async def test_get_order_comes_from_postgresql_once_redis_forgot_it(
    client: httpx.AsyncClient, engine_sync: Engine, db: sa.Engine
) -> None:
    put_product(engine_sync, db, ProductSpec(1, "Widget", 500, 10))
    created = await order(client, 1, 2)
    raw, headers = signed({"order_id": created["order_id"], "transaction_id": "txn-1", "status": "success"})
    paid = (await client.post("/api/payments/webhook", content=raw, headers=headers)).json()
    apply_events(db, engine_sync.read_outbox(1))
    _forget_orders(engine_sync, 1)

    response = await client.get(f"/api/orders/{created['order_id']}")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["transaction_id"], body["amount_cents"]) == ("paid", "txn-1", 1000)
    assert body["created_at"] == created["created_at"]
    assert body["closed_at"] is not None
    assert paid["status"] == "paid"


async def test_get_unknown_order_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(f"/api/orders/{UNKNOWN_ORDER}"), 404, "order_not_found")


@pytest.mark.parametrize("order_id", ["x", "h1_01JD0Z3N5W8YQ2T4V6X8Z0A1B2", "o1_" + "1" * 100])
async def test_order_id_of_the_wrong_shape_is_422(client: httpx.AsyncClient, order_id: str) -> None:
    for response in (
        await client.get(f"/api/orders/{order_id}"),
        await client.post(f"/api/orders/{order_id}/cancel"),
    ):
        problem = assert_problem(response, 422, "validation_error")
        assert problem["errors"][0]["field"] == "order_id"


async def test_cancel_returns_the_units_and_cancelling_again_changes_nothing(
    client: httpx.AsyncClient, engine_sync: Engine
) -> None:
    engine_sync.set_stock(1, 5)
    created = await order(client, 1, 5)
    assert engine_sync.snapshot(1).available == 0

    response = await client.post(f"/api/orders/{created['order_id']}/cancel")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["cancel_reason"]) == ("cancelled", "cancelled")
    assert engine_sync.snapshot(1).available == 5
    again = await client.post(f"/api/orders/{created['order_id']}/cancel")
    assert again.status_code == 200
    assert again.json() == body
    assert engine_sync.snapshot(1).available == 5


async def test_cancel_of_a_paid_order_is_409(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    engine_sync.set_stock(1, 5)
    created = await order(client, 1)
    engine_sync.settle(created["order_id"], "t-paid", "success")
    body = assert_problem(await client.post(f"/api/orders/{created['order_id']}/cancel"), 409, "order_not_pending")
    assert body["order_status"] == "paid"
    assert engine_sync.snapshot(1).sold == 1


async def test_cancel_of_an_unknown_order_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post(f"/api/orders/{UNKNOWN_ORDER}/cancel"), 404, "order_not_found")


async def test_cancel_of_an_order_redis_forgot_answers_from_postgresql(
    client: httpx.AsyncClient, engine_sync: Engine, db: sa.Engine
) -> None:
    put_product(engine_sync, db, ProductSpec(1, "Widget", 500, 10))
    paid, cancelled = await order(client, 1), await order(client, 1)
    engine_sync.settle(paid["order_id"], "t-1", "success")
    engine_sync.cancel(cancelled["order_id"])
    apply_events(db, engine_sync.read_outbox(1))
    _forget_orders(engine_sync, 1)

    assert_problem(await client.post(f"/api/orders/{paid['order_id']}/cancel"), 409, "order_not_pending")
    response = await client.post(f"/api/orders/{cancelled['order_id']}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"


def _forget_orders(engine: Engine, product_id: int) -> None:
    """What Redis looks like a day after the orders closed: their records pruned."""
    keys = product_keys(product_id)
    engine.redis.delete(keys.orders, keys.order_exp, keys.tombs)
