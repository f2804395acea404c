"""POST/GET/DELETE /api/holds through HTTP, against real Redis."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import redis
import sqlalchemy as sa

from api.app import create_app
from engine import Engine
from tests.support.api import assert_problem, hold, make_settings, serve
from tests.support.clock import freeze_rate_limit_clock

pytestmark = pytest.mark.anyio


def _available(engine: Engine, product_id: int) -> int:
    return engine.snapshot(product_id).available


async def test_hold_takes_units_and_answers_with_the_hold(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    engine_sync.set_stock(1, 10, price_cents=250)
    before = time.time()

    response = await client.post("/api/holds", json={"product_id": 1, "quantity": 3, "customer_id": "alice"})

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"hold_id", "product_id", "quantity", "customer_id", "expires_at"}
    assert body["hold_id"].startswith("h1_")
    assert (body["product_id"], body["quantity"], body["customer_id"]) == (1, 3, "alice")
    assert body["expires_at"].endswith("Z")
    expires = datetime.fromisoformat(body["expires_at"]).timestamp()
    assert before + 119 < expires < time.time() + 121  # the default 120 s hold
    assert _available(engine_sync, 1) == 7


async def test_hold_without_customer_answers_null_customer(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    engine_sync.set_stock(1, 1)
    body = await hold(client, 1)
    assert body["customer_id"] is None


async def test_hold_refuses_when_sold_out_and_says_how_many_are_left(
    client: httpx.AsyncClient, engine_sync: Engine
) -> None:
    engine_sync.set_stock(1, 2)
    response = await client.post("/api/holds", json={"product_id": 1, "quantity": 3})
    body = assert_problem(response, 409, "out_of_stock")
    assert body["available"] == 2
    assert _available(engine_sync, 1) == 2


async def test_hold_refuses_past_the_customer_limit(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    engine_sync.set_stock(1, 10, max_per_customer=2)
    await hold(client, 1, 2, customer_id="bob")
    response = await client.post("/api/holds", json={"product_id": 1, "quantity": 1, "customer_id": "bob"})
    body = assert_problem(response, 409, "limit_exceeded")
    assert (body["limit"], body["used"]) == (2, 2)
    await hold(client, 1, 1, customer_id="carol")


async def test_hold_refuses_outside_the_sale_window(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    later = int(time.time() * 1000) + 3_600_000
    engine_sync.set_stock(1, 10, starts_at_ms=later)
    response = await client.post("/api/holds", json={"product_id": 1, "quantity": 1})
    body = assert_problem(response, 409, "sale_not_active")
    assert body["sale_starts_at"].endswith("Z")


async def test_hold_on_an_unknown_product_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/holds", json={"product_id": 999, "quantity": 1})
    assert_problem(response, 404, "product_not_found")


async def test_idempotency_key_replays_the_first_hold_without_taking_stock_twice(
    client: httpx.AsyncClient, engine_sync: Engine
) -> None:
    engine_sync.set_stock(1, 10)
    request = {"product_id": 1, "quantity": 2, "customer_id": "dave"}
    headers = {"Idempotency-Key": "retry-me-1"}

    first = await client.post("/api/holds", json=request, headers=headers)
    second = await client.post("/api/holds", json=request, headers=headers)

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json() == second.json()
    assert _available(engine_sync, 1) == 8
    other = await client.post("/api/holds", json=request, headers={"Idempotency-Key": "retry-me-2"})
    assert other.json()["hold_id"] != first.json()["hold_id"]
    assert _available(engine_sync, 1) == 6


async def test_idempotency_key_reused_for_another_request_is_refused(
    client: httpx.AsyncClient, engine_sync: Engine
) -> None:
    engine_sync.set_stock(1, 10)
    headers = {"Idempotency-Key": "k"}
    await client.post("/api/holds", json={"product_id": 1, "quantity": 1}, headers=headers)
    response = await client.post("/api/holds", json={"product_id": 1, "quantity": 5}, headers=headers)
    assert_problem(response, 409, "idempotency_key_reused")
    assert _available(engine_sync, 1) == 9


async def test_another_customers_idempotency_key_reveals_nothing_of_their_hold(
    client: httpx.AsyncClient, engine_sync: Engine
) -> None:
    engine_sync.set_stock(1, 10)
    headers = {"Idempotency-Key": "alice-cart-1"}
    alice_body = {"product_id": 1, "quantity": 1, "customer_id": "alice"}
    alice = (await client.post("/api/holds", json=alice_body, headers=headers)).json()

    # When Mallory sends Alice's key with his own customer_id, or with none
    mallory = await client.post(
        "/api/holds", json={"product_id": 1, "quantity": 2, "customer_id": "mallory"}, headers=headers
    )
    anonymous = await client.post("/api/holds", json={"product_id": 1, "quantity": 1}, headers=headers)
    # and retries, with the same body and with another quantity
    replayed = await client.post(
        "/api/holds", json={"product_id": 1, "quantity": 2, "customer_id": "mallory"}, headers=headers
    )
    reused = await client.post(
        "/api/holds", json={"product_id": 1, "quantity": 3, "customer_id": "mallory"}, headers=headers
    )

    # Then he gets holds of his own, and no answer carries a trace of Alice's
    assert (mallory.status_code, anonymous.status_code, replayed.status_code) == (201, 201, 201)
    assert (mallory.json()["customer_id"], mallory.json()["quantity"]) == ("mallory", 2)
    assert anonymous.json()["customer_id"] is None
    assert replayed.json() == mallory.json()
    assert assert_problem(reused, 409, "idempotency_key_reused")["hold_id"] == mallory.json()["hold_id"]
    for answer in (mallory, anonymous, replayed, reused):
        assert alice["hold_id"].split("_")[1] not in answer.text
        assert "alice" not in answer.text
    # and her hold is untouched: her retry replays it, and she converts it
    assert (await client.post("/api/holds", json=alice_body, headers=headers)).json() == alice
    converted = await client.post("/api/orders", json={"hold_id": alice["hold_id"]})
    assert (converted.status_code, converted.json()["customer_id"], converted.json()["quantity"]) == (201, "alice", 1)
    assert _available(engine_sync, 1) == 6


async def test_an_idempotency_key_reused_by_its_own_caller_names_only_that_callers_hold(
    client: httpx.AsyncClient, engine_sync: Engine
) -> None:
    engine_sync.set_stock(1, 10)
    headers = {"Idempotency-Key": "cart-9"}
    await client.post("/api/holds", json={"product_id": 1, "quantity": 1, "customer_id": "alice"}, headers=headers)
    bob = await client.post("/api/holds", json={"product_id": 1, "quantity": 1, "customer_id": "bob"}, headers=headers)

    again = await client.post(
        "/api/holds", json={"product_id": 1, "quantity": 3, "customer_id": "bob"}, headers=headers
    )

    problem = assert_problem(again, 409, "idempotency_key_reused")
    assert problem["hold_id"] == bob.json()["hold_id"]
    assert _available(engine_sync, 1) == 8


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"quantity": 1}, ["product_id"]),
        ({"product_id": 1}, ["quantity"]),
        ({"product_id": "1", "quantity": 1}, ["product_id"]),
        ({"product_id": 0, "quantity": 1}, ["product_id"]),
        ({"product_id": 10**15, "quantity": 1}, ["product_id"]),
        ({"product_id": True, "quantity": 1}, ["product_id"]),
        ({"product_id": 1, "quantity": 0}, ["quantity"]),
        ({"product_id": 1, "quantity": -3}, ["quantity"]),
        ({"product_id": 1, "quantity": 1.0}, ["quantity"]),
        ({"product_id": 1, "quantity": 10**6}, ["quantity"]),
        ({"product_id": 1, "quantity": 10**30}, ["quantity"]),
        ({"product_id": 1, "quantity": 1, "customer_id": ""}, ["customer_id"]),
        ({"product_id": 1, "quantity": 1, "customer_id": "x" * 129}, ["customer_id"]),
        ({"product_id": 1, "quantity": 1, "customer_id": "nul\u0000byte"}, ["customer_id"]),
        ({"product_id": 1, "quantity": 1, "customer_id": 7}, ["customer_id"]),
        ({"product_id": 1, "quantity": 1, "customr_id": "typo"}, ["customr_id"]),
        ({}, ["product_id", "quantity"]),
    ],
)
async def test_hold_with_fields_at_fault_is_422_naming_them(
    client: httpx.AsyncClient, engine_sync: Engine, body: dict[str, object], fields: list[str]
) -> None:
    engine_sync.set_stock(1, 10)
    response = await client.post("/api/holds", json=body)
    problem = assert_problem(response, 422, "validation_error")
    assert [e["field"] for e in problem["errors"]] == fields
    assert _available(engine_sync, 1) == 10


async def test_overlong_idempotency_key_is_422(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    engine_sync.set_stock(1, 10)
    response = await client.post(
        "/api/holds", json={"product_id": 1, "quantity": 1}, headers={"Idempotency-Key": "k" * 129}
    )
    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"][0]["field"] == "Idempotency-Key"


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"product_id": 1, "quantity": ', "application/json"),
        (b"[1, 2]", "application/json"),
        (b'"text"', "application/json"),
        (b"", "application/json"),
        (b"NaN", "application/json"),
        (b'{"product_id": 1, "quantity": 1}', "text/plain"),
        (b"product_id=1&quantity=1", "application/x-www-form-urlencoded"),
        (b"\xff\xfe{}", "application/json"),
    ],
)
async def test_hold_body_that_is_not_a_json_object_is_400(
    client: httpx.AsyncClient, content: bytes, content_type: str
) -> None:
    response = await client.post("/api/holds", content=content, headers={"Content-Type": content_type})
    assert_problem(response, 400, "invalid_json")


async def test_hold_body_over_16_kib_is_413(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    engine_sync.set_stock(1, 10)
    padding = "x" * (16 * 1024)
    response = await client.post("/api/holds", json={"product_id": 1, "quantity": 1, "customer_id": padding})
    assert_problem(response, 413, "payload_too_large")

    async def chunks() -> object:  # no Content-Length: the limit holds while streaming
        for _ in range(20):
            yield b" " * 1024

    streamed = await client.post("/api/holds", content=chunks(), headers={"Content-Type": "application/json"})  # type: ignore[arg-type]
    assert_problem(streamed, 413, "payload_too_large")
    assert _available(engine_sync, 1) == 10


async def test_get_hold_answers_an_active_hold(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    engine_sync.set_stock(1, 10)
    held = await hold(client, 1, 2, customer_id="erin")
    response = await client.get(f"/api/holds/{held['hold_id']}")
    assert response.status_code == 200
    assert response.json() == {**held, "status": "active"}


async def test_get_hold_of_an_unknown_hold_is_404(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    engine_sync.set_stock(1, 10)
    response = await client.get("/api/holds/h1_01JD0Z3N5W8YQ2T4V6X8Z0A1B2")
    assert_problem(response, 404, "hold_not_found")


@pytest.mark.parametrize(
    "hold_id",
    [
        "nope",
        "h0_01JD0Z3N5W8YQ2T4V6X8Z0A1B2",
        "o1_01JD0Z3N5W8YQ2T4V6X8Z0A1B2",
        "h1_" + "0" * 60,
        "h1_01JD0Z3N5W8YQ2T4V6X8Z0A1BU",
    ],
)
async def test_hold_id_of_the_wrong_shape_is_422(client: httpx.AsyncClient, hold_id: str) -> None:
    for response in (await client.get(f"/api/holds/{hold_id}"), await client.delete(f"/api/holds/{hold_id}")):
        problem = assert_problem(response, 422, "validation_error")
        assert problem["errors"][0]["field"] == "hold_id"


async def test_get_hold_once_ordered_is_409(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    engine_sync.set_stock(1, 10)
    held = await hold(client, 1)
    ordered = await client.post("/api/orders", json={"hold_id": held["hold_id"]})
    response = await client.get(f"/api/holds/{held['hold_id']}")
    body = assert_problem(response, 409, "hold_already_used")
    assert body["order_id"] == ordered.json()["order_id"]


async def test_delete_hold_gives_the_units_back_at_once(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    engine_sync.set_stock(1, 3)
    held = await hold(client, 1, 3)
    assert_problem(await client.post("/api/holds", json={"product_id": 1, "quantity": 1}), 409, "out_of_stock")

    response = await client.delete(f"/api/holds/{held['hold_id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert _available(engine_sync, 1) == 3
    await hold(client, 1, 3)
    assert (await client.delete(f"/api/holds/{held['hold_id']}")).status_code == 204  # releasing twice: one effect
    assert _available(engine_sync, 1) == 0
    assert_problem(await client.get(f"/api/holds/{held['hold_id']}"), 410, "hold_released")


async def test_delete_hold_of_an_unknown_or_ordered_hold(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    engine_sync.set_stock(1, 10)
    assert_problem(await client.delete("/api/holds/h1_01JD0Z3N5W8YQ2T4V6X8Z0A1B2"), 404, "hold_not_found")
    held = await hold(client, 1)
    await client.post("/api/orders", json={"hold_id": held["hold_id"]})
    assert_problem(await client.delete(f"/api/holds/{held['hold_id']}"), 409, "hold_already_used")
    assert engine_sync.snapshot(1).pending == 1


async def test_expired_hold_is_410_and_its_units_are_back(
    redis_url: str, database_url: str, tmp_path: Path, real_redis: redis.Redis, db: sa.Engine
) -> None:
    engine = Engine(real_redis)
    engine.set_stock(1, 4)
    settings = make_settings(redis_url, database_url, tmp_path, FLASHSALE_HOLD_TTL_SECONDS="1")
    async with serve(create_app(settings)) as http:
        first, second, third = [await hold(http, 1) for _ in range(3)]
        await asyncio.sleep(1.05)
        assert _available(engine, 1) == 4  # expired a moment ago, already available
        assert_problem(await http.get(f"/api/holds/{first['hold_id']}"), 410, "hold_expired")
        assert_problem(await http.delete(f"/api/holds/{second['hold_id']}"), 410, "hold_expired")
        response = await http.post("/api/orders", json={"hold_id": third["hold_id"]})
        body = assert_problem(response, 410, "hold_expired")
        assert body["hold_id"] == third["hold_id"]
        assert engine.snapshot(1).pending == 0


async def test_concurrent_holds_never_oversell(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    engine_sync.set_stock(1, 50)

    responses = await asyncio.gather(
        *(client.post("/api/holds", json={"product_id": 1, "quantity": 1}) for _ in range(200))
    )

    assert Counter(r.status_code for r in responses) == {201: 50, 409: 150}
    assert all(r.json()["code"] == "out_of_stock" for r in responses if r.status_code == 409)
    assert len({r.json()["hold_id"] for r in responses if r.status_code == 201}) == 50
    snapshot = engine_sync.snapshot(1)
    assert (snapshot.available, snapshot.held) == (0, 50)


async def test_customer_limit_holds_under_concurrent_holds_by_one_customer(
    client: httpx.AsyncClient, engine_sync: Engine
) -> None:
    engine_sync.set_stock(1, 1000, max_per_customer=5)
    responses = await asyncio.gather(
        *(client.post("/api/holds", json={"product_id": 1, "quantity": 1, "customer_id": "greedy"}) for _ in range(100))
    )
    assert Counter(r.status_code for r in responses) == {201: 5, 409: 95}
    assert engine_sync.snapshot(1).held == 5


async def test_rate_limit_refuses_a_flooding_client_with_429(
    redis_url: str,
    database_url: str,
    tmp_path: Path,
    real_redis: redis.Redis,
    db: sa.Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = Engine(real_redis)
    engine.set_stock(1, 1000)
    settings = make_settings(redis_url, database_url, tmp_path, FLASHSALE_RATE_LIMIT_PER_SECOND="5")
    clock = freeze_rate_limit_clock(monkeypatch)  # all 8 requests share one window, however slow the machine
    async with serve(create_app(settings)) as http:
        responses = [await http.post("/api/holds", json={"product_id": 1, "quantity": 1}) for _ in range(8)]
        assert [r.status_code for r in responses] == [201] * 5 + [429] * 3
        problem = assert_problem(responses[-1], 429, "rate_limited")
        assert problem["limit"] == 5
        assert responses[-1].headers["Retry-After"] == "1"
        assert engine.snapshot(1).held == 5
        clock.now += 1
        await hold(http, 1)  # a new second, a new window


async def test_without_a_rate_limit_one_client_is_not_limited(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    engine_sync.set_stock(1, 1000)
    responses = await asyncio.gather(
        *(client.post("/api/holds", json={"product_id": 1, "quantity": 1}) for _ in range(50))
    )
    assert {r.status_code for r in responses} == {201}
