"""POST /api/demo/payments: the simulated payment provider pays (or fails) a pending order by a signed webhook."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.app import create_app
from api.routes import demo_provider
from engine import Engine
from flashsale.stack import up as stack
from shared import signing
from shared.webhook import WEBHOOK_PATH
from tests.support.api import WEBHOOK_SECRET, assert_problem, make_settings, order, serve, signed
from tests.support.browser import live_server, serve_in_thread
from tests.support.buyers import JWT_ENV, bearer

pytestmark = pytest.mark.anyio

DEMO = {"FLASHSALE_DEMO_PROVIDER": "1"}


@pytest.fixture
async def demo_client(redis_url: str, database_url: str, tmp_path: Path, real_redis: redis.Redis, db: sa.Engine) -> Any:
    async with serve(create_app(make_settings(redis_url, database_url, tmp_path, **DEMO))) as http:
        yield http


async def test_the_provider_is_off_unless_turned_on(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    engine_sync.set_stock(1, 5)
    created = await order(client, 1)

    response = await client.post("/api/demo/payments", json={"order_id": created["order_id"], "status": "success"})

    assert_problem(response, 403, "demo_provider_disabled")
    assert (await client.get(f"/api/orders/{created['order_id']}")).json()["status"] == "pending"


async def test_the_provider_refuses_bad_input_unknown_and_closed_orders(
    demo_client: httpx.AsyncClient, engine_sync: Engine
) -> None:
    engine_sync.set_stock(1, 5)
    created = await order(demo_client, 1)
    order_id = created["order_id"]

    assert_problem(await demo_client.post("/api/demo/payments", content=b"{"), 400, "invalid_json")
    invalid = await demo_client.post("/api/demo/payments", json={"order_id": order_id, "status": "maybe", "x": 1})
    fields = {e["field"] for e in assert_problem(invalid, 422, "validation_error")["errors"]}
    assert fields == {"status", "x"}
    unknown = "o1_01JD0Z3N5W8YQ2T4V6X8Z0A1B3"
    missing = await demo_client.post("/api/demo/payments", json={"order_id": unknown, "status": "success"})
    assert_problem(missing, 404, "order_not_found")

    body, headers = signed({"order_id": order_id, "transaction_id": "t-1", "status": "success"})
    await demo_client.post("/api/payments/webhook", content=body, headers=headers)
    paid = await demo_client.post("/api/demo/payments", json={"order_id": order_id, "status": "success"})
    assert assert_problem(paid, 409, "order_not_pending")["order_status"] == "paid"


async def test_the_provider_needs_the_webhook_secret(
    redis_url: str, database_url: str, tmp_path: Path, real_redis: redis.Redis, db: sa.Engine
) -> None:
    Engine(real_redis).set_stock(1, 5)
    settings = make_settings(redis_url, database_url, tmp_path, FLASHSALE_WEBHOOK_SECRET="", **DEMO)
    async with serve(create_app(settings)) as http:
        created = await order(http, 1)
        response = await http.post("/api/demo/payments", json={"order_id": created["order_id"], "status": "success"})
    assert_problem(response, 503, "webhook_disabled")


# --- the webhook, sent for real ---------------------------------------------------------------------


@pytest.fixture
def shop(redis_url: str, database_url: str, tmp_path: Path, real_redis: redis.Redis, db: sa.Engine) -> Iterator[str]:
    Engine(real_redis).set_stock(1, 5, price_cents=900)
    with live_server(make_settings(redis_url, database_url, tmp_path, **DEMO)) as base:
        yield base


def _pending_order(base: str) -> dict[str, Any]:
    hold = httpx.post(f"{base}/api/holds", json={"product_id": 1, "quantity": 2}).json()
    return httpx.post(f"{base}/api/orders", json={"hold_id": hold["hold_id"]}).json()  # type: ignore[no-any-return]


def _settled(base: str, order_id: str, timeout: float = 6.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        current: dict[str, Any] = httpx.get(f"{base}/api/orders/{order_id}").json()
        if current["status"] != "pending" or time.monotonic() > deadline:
            return current
        time.sleep(0.1)


def test_the_provider_pays_the_order_by_a_signed_webhook_a_moment_later(shop: str) -> None:
    created = _pending_order(shop)

    response = httpx.post(f"{shop}/api/demo/payments", json={"order_id": created["order_id"], "status": "success"})

    assert response.status_code == 202
    answer = response.json()
    assert answer["order_id"] == created["order_id"]
    assert answer["status"] == "success"
    assert httpx.get(f"{shop}/api/orders/{created['order_id']}").json()["status"] == "pending"  # not yet
    paid = _settled(shop, created["order_id"])
    assert paid["status"] == "paid"
    assert paid["transaction_id"] == answer["transaction_id"]
    # It came through the webhook's front door, signature checked, like any provider's.
    metrics = httpx.get(f"{shop}/metrics").text
    assert re.search(r'flashsale_http_requests_total\{[^}]*route="/api/payments/webhook"[^}]*status="200"', metrics)


def test_a_declined_payment_cancels_the_order_and_returns_its_units(shop: str, engine_sync: Engine) -> None:
    created = _pending_order(shop)
    assert engine_sync.snapshot(1).available == 3

    response = httpx.post(f"{shop}/api/demo/payments", json={"order_id": created["order_id"], "status": "failed"})

    assert response.status_code == 202
    cancelled = _settled(shop, created["order_id"])
    assert (cancelled["status"], cancelled["cancel_reason"]) == ("cancelled", "payment_failed")
    assert engine_sync.snapshot(1).available == 5


async def test_the_provider_retries_a_webhook_the_api_could_not_take(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_provider, "DELAY_SECONDS", 0)
    monkeypatch.setattr(demo_provider, "RETRY_SECONDS", 0)
    received: list[tuple[bool, bytes]] = []

    async def webhook(request: Request) -> Response:
        body = await request.body()
        headers = request.headers
        valid = signing.verify(
            WEBHOOK_SECRET, headers.get(signing.TIMESTAMP_HEADER), headers.get(signing.SIGNATURE_HEADER), body
        )
        received.append((valid, body))
        return JSONResponse({}, status_code=503 if len(received) == 1 else 200)

    target = Starlette(routes=[Route(WEBHOOK_PATH, webhook, methods=["POST"])])
    with serve_in_thread(target) as base:
        await demo_provider.send_webhook(base + WEBHOOK_PATH, WEBHOOK_SECRET, "o1_X", "txn_1", "success")

    assert [valid for valid, _ in received] == [True, True]
    assert received[1][1] == b'{"order_id":"o1_X","transaction_id":"txn_1","status":"success"}'


def test_the_webhook_goes_to_the_address_the_checkout_reached() -> None:
    def request(server: tuple[str, int | None]) -> Request:
        scope = {"type": "http", "server": server, "scheme": "http", "path": "/", "headers": [], "query_string": b""}
        return Request(scope)

    assert demo_provider.webhook_url(request(("127.0.0.1", 8000))) == "http://127.0.0.1:8000/api/payments/webhook"
    assert demo_provider.webhook_url(request(("::1", 8000))) == "http://[::1]:8000/api/payments/webhook"


# --- flashsale up turns it on -----------------------------------------------------------------------


def _prepare(monkeypatch: pytest.MonkeyPatch, redis_url: str, database_url: str, tmp_path: Path, **env: str) -> Any:
    monkeypatch.setattr(stack.logs, "configure", lambda *args, **kwargs: None)  # keep this process's logging
    environ = {
        "FLASHSALE_REDIS_URL": redis_url,
        "FLASHSALE_DATABASE_URL": database_url,
        "FLASHSALE_VAR_DIR": str(tmp_path / "var"),
        **env,
    }
    return stack.prepare(environ, "127.0.0.1", 0, lambda *args: None)


def test_up_wires_the_storefront_to_the_simulated_provider(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, database_url: str, tmp_path: Path, db: sa.Engine
) -> None:
    prepared = _prepare(monkeypatch, redis_url, database_url, tmp_path)

    assert prepared.env["FLASHSALE_DEMO_PROVIDER"] == "1"
    assert prepared.settings.demo_provider
    lines = "\n".join(stack.banner(prepared))
    assert f"storefront        {prepared.url}/  (Pay: simulated provider)" in lines
    assert f"dashboard         {prepared.url}/dashboard" in lines


def test_up_leaves_the_provider_off_when_told(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, database_url: str, tmp_path: Path, db: sa.Engine
) -> None:
    prepared = _prepare(monkeypatch, redis_url, database_url, tmp_path, FLASHSALE_DEMO_PROVIDER="0")

    assert not prepared.settings.demo_provider
    assert "simulated provider" not in "\n".join(stack.banner(prepared))


async def test_the_demo_login_signs_a_buyer_token_the_api_takes(
    redis_url: str, database_url: str, tmp_path: Path, real_redis: redis.Redis, db: sa.Engine, engine_sync: Engine
) -> None:
    engine_sync.set_stock(1, 10)
    settings = make_settings(redis_url, database_url, tmp_path, **DEMO, **JWT_ENV)
    async with serve(create_app(settings)) as http:
        login = await http.post("/api/demo/login", json={"name": "shopper-abc"})
        assert login.status_code == 200, login.text
        token = login.json()["token"]
        held = await http.post(
            "/api/holds", json={"product_id": 1, "quantity": 1}, headers={"Authorization": f"Bearer {token}"}
        )
        refused = await http.post("/api/demo/login", json={"name": ""})

    assert login.json()["sub"] == "shopper-abc"
    assert held.status_code == 201, held.text
    assert held.json()["customer_id"] == "shopper-abc"
    assert_problem(refused, 422, "validation_error")


async def test_the_demo_login_is_off_without_the_demo_provider_or_an_hs256_secret(
    redis_url: str, database_url: str, tmp_path: Path, real_redis: redis.Redis, db: sa.Engine
) -> None:
    for env, code in (({**JWT_ENV}, "demo_provider_disabled"), (DEMO, "demo_login_unavailable")):
        async with serve(create_app(make_settings(redis_url, database_url, tmp_path, **env))) as http:
            assert_problem(await http.post("/api/demo/login", json={"name": "x"}), 403, code)


async def test_with_buyer_tokens_the_provider_pays_only_the_token_buyers_own_order(
    monkeypatch: pytest.MonkeyPatch,
    redis_url: str,
    database_url: str,
    tmp_path: Path,
    real_redis: redis.Redis,
    db: sa.Engine,
    engine_sync: Engine,
) -> None:
    sent: list[str] = []

    async def record(url: str, secret: str, order_id: str, transaction_id: str, result: str) -> None:
        sent.append(order_id)

    monkeypatch.setattr(demo_provider, "send_webhook", record)
    engine_sync.set_stock(1, 10)
    settings = make_settings(redis_url, database_url, tmp_path, **DEMO, **JWT_ENV)
    async with serve(create_app(settings)) as http:
        alice = bearer("alice")
        hold = (await http.post("/api/holds", json={"product_id": 1, "quantity": 1}, headers=alice)).json()
        created = (await http.post("/api/orders", json={"hold_id": hold["hold_id"]}, headers=alice)).json()
        pay = {"order_id": created["order_id"], "status": "success"}

        anonymous = await http.post("/api/demo/payments", json=pay)
        another = await http.post("/api/demo/payments", json=pay, headers=bearer("mallory"))
        own = await http.post("/api/demo/payments", json=pay, headers=alice)

    assert_problem(anonymous, 401, "invalid_buyer_token")
    assert_problem(another, 404, "order_not_found")
    assert own.status_code == 202, own.text
    assert own.json()["order_id"] == created["order_id"]
    assert sent == [created["order_id"]]  # one webhook, for the buyer's own order
