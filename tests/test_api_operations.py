"""Liveness, readiness, metrics, the OpenAPI document, error answers, outages and configuration."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa
from starlette.routing import Route
from structlog.testing import capture_logs

from api import errors
from api.app import create_app
from api.openapi import document
from api.routes import holds as holds_routes
from engine import Engine, EngineError
from persistence.catalog import ProductSpec, put_product
from persistence.db import make_engine
from shared.settings import ConfigError, load
from tests.support.api import ADMIN, assert_problem, hold, make_settings, order, serve, signed
from tests.support.servers import free_port
from tests.support.stoppable import StoppableRedis

pytestmark = pytest.mark.anyio

DEAD_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:1/flashsale_nowhere"


def _dead_redis() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


async def test_livez_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/livez")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_answers_ok_when_everything_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"engine": "ok", "queue": "ok", "database": "ok"}}


async def test_readyz_names_the_database_when_it_is_down(
    redis_url: str, tmp_path: Path, real_redis: redis.Redis
) -> None:
    settings = make_settings(redis_url, DEAD_DATABASE, tmp_path)
    async with serve(create_app(settings)) as http:
        response = await http.get("/readyz")
    body = assert_problem(response, 503, "not_ready")
    assert body["checks"] == {"engine": "ok", "queue": "ok", "database": "down"}
    assert "database" in body["detail"]


async def test_readyz_names_redis_when_it_is_down(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(_dead_redis(), database_url, tmp_path)
    async with serve(create_app(settings)) as http:
        response = await http.get("/readyz")
    body = assert_problem(response, 503, "not_ready")
    assert body["checks"] == {"engine": "down", "queue": "down", "database": "ok"}


async def test_redis_down_is_a_quick_503_not_a_500_or_a_hang(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    causes: list[str] = []
    answer = errors.engine_problem

    def recorded(error: EngineError) -> Any:
        causes.append(str(error))
        return answer(error)

    monkeypatch.setattr(errors, "engine_problem", recorded)
    # A deadline no request could reach unnoticed: each 503 must come from the refused connection itself.
    settings = make_settings(_dead_redis(), database_url, tmp_path, FLASHSALE_REDIS_TIMEOUT_SECONDS="60")
    async with serve(create_app(settings)) as http:
        responses = [
            await http.post("/api/holds", json={"product_id": 1, "quantity": 1}),
            await http.get("/api/holds/h1_01JD0Z3N5W8YQ2T4V6X8Z0A1B2"),
            await http.post("/api/orders", json={"hold_id": "h1_01JD0Z3N5W8YQ2T4V6X8Z0A1B2"}),
            await http.post("/api/orders/o1_01JD0Z3N5W8YQ2T4V6X8Z0A1B2/cancel"),
            await http.post(
                "/api/payments/webhook",
                **_as_kwargs(
                    signed({"order_id": "o1_01JD0Z3N5W8YQ2T4V6X8Z0A1B2", "transaction_id": "t", "status": "success"})
                ),
            ),
        ]
        metrics = await http.get("/metrics")
    for response in responses:
        assert_problem(response, 503, "engine_unavailable")
        assert response.headers["Retry-After"] == "1"
    assert len(causes) == len(responses)
    assert all("Error 111 connecting" in cause for cause in causes), causes  # refused at once, never waited out
    assert metrics.status_code == 200
    assert "flashsale_engine_up 0.0" in metrics.text


async def test_a_hung_redis_is_a_503_at_the_configured_deadline_for_every_route(
    redis_url: str,
    database_url: str,
    tmp_path: Path,
    real_redis: redis.Redis,
    db: sa.Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    product = {"name": "n", "price_cents": 1, "stock": 10}
    causes: list[str] = []
    answer = errors.engine_problem

    def recorded(error: EngineError) -> Any:
        causes.append(str(error))
        return answer(error)

    monkeypatch.setattr(errors, "engine_problem", recorded)
    async with StoppableRedis(redis_url) as engine_redis:
        settings = make_settings(
            engine_redis.url,
            database_url,
            tmp_path,
            FLASHSALE_QUEUE_REDIS_URL=redis_url,
            FLASHSALE_REDIS_TIMEOUT_SECONDS="0.3",
        )
        # Arranged behind the API's back: its 0.3 s deadline is for the hang, not for a busy machine.
        healthy = Engine(real_redis)
        put_product(healthy, db, ProductSpec(1, "n", 1, 10))
        held = {"hold_id": healthy.reserve(1, 1).hold_id}
        async with serve(create_app(settings)) as http:
            engine_redis.stop()  # accepts connections, never answers, as a SIGSTOPped server
            order_id = held["hold_id"].replace("h", "o", 1)
            webhook = signed({"order_id": order_id, "transaction_id": "t", "status": "success"})
            responses = await asyncio.gather(
                *(http.post("/api/holds", json={"product_id": 1, "quantity": 1}) for _ in range(5)),
                http.get(f"/api/holds/{held['hold_id']}"),
                http.delete(f"/api/holds/{held['hold_id']}"),
                http.post("/api/orders", json={"hold_id": held["hold_id"]}),
                http.get(f"/api/orders/{order_id}"),
                http.post(f"/api/orders/{order_id}/cancel"),
                http.post("/api/payments/webhook", **_as_kwargs(webhook)),
                http.get("/api/products/1"),
                http.put("/api/admin/products/1", json=product, headers=ADMIN),
            )
            ready = await http.get("/readyz")
            engine_redis.cont()

    for response in responses:
        body = assert_problem(response, 503, "engine_unavailable")
        assert response.headers["Retry-After"] == "1"
        assert body["detail"] == "the stock engine is unavailable, try again shortly"
    assert assert_problem(ready, 503, "not_ready")["checks"]["engine"] == "down"
    # What ended each wait: the deadline, or (the admin's synchronous engine) a socket timeout set to it.
    assert sorted(causes) == ["Redis did not answer within 0.3 s"] * (len(responses) - 1) + [
        "Redis is unavailable: Timeout reading from socket"
    ]


async def test_a_request_that_spent_its_deadline_before_its_engine_call_is_503_and_changes_nothing(
    redis_url: str,
    database_url: str,
    tmp_path: Path,
    real_redis: redis.Redis,
    db: sa.Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = Engine(real_redis)
    engine.set_stock(1, 10)
    settings = make_settings(redis_url, database_url, tmp_path, FLASHSALE_REDIS_TIMEOUT_SECONDS="0.2")
    read_json = holds_routes.read_json

    async def slow(request: Any) -> Any:  # a request kept waiting in the API, past its deadline
        await asyncio.sleep(0.3)
        return await read_json(request)

    monkeypatch.setattr(holds_routes, "read_json", slow)
    async with serve(create_app(settings)) as http:
        response = await http.post("/api/holds", json={"product_id": 1, "quantity": 1})

    assert_problem(response, 503, "engine_unavailable")
    assert engine.snapshot(1).held == 0  # nothing was sent


@pytest.mark.parametrize("value", ["soon", "0", "-1", "nan", "301"])
def test_a_redis_timeout_that_is_not_a_sensible_number_of_seconds_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("FLASHSALE_REDIS_TIMEOUT_SECONDS", value)
    with pytest.raises(ConfigError) as error:
        create_app()
    assert error.value.variable == "FLASHSALE_REDIS_TIMEOUT_SECONDS"


def test_the_redis_timeout_defaults_to_two_seconds_and_takes_fractions() -> None:
    assert load({}).redis_timeout_seconds == 2.0
    assert load({"FLASHSALE_REDIS_TIMEOUT_SECONDS": "0.5"}).redis_timeout_seconds == 0.5


def _as_kwargs(signed_body: tuple[bytes, dict[str, str]]) -> dict[str, Any]:
    raw, headers = signed_body
    return {"content": raw, "headers": headers}


async def test_holds_orders_and_webhooks_work_while_the_database_is_down(
    redis_url: str, tmp_path: Path, real_redis: redis.Redis
) -> None:
    engine = Engine(real_redis)
    engine.set_stock(1, 10)
    settings = make_settings(redis_url, DEAD_DATABASE, tmp_path)
    async with serve(create_app(settings)) as http:
        created = await order(http, 1, 2)
        paid = await http.post(
            "/api/payments/webhook",
            **_as_kwargs(signed({"order_id": created["order_id"], "transaction_id": "t-db-down", "status": "success"})),
        )
        fetched = await http.get(f"/api/orders/{created['order_id']}")
        products = await http.get("/api/products")
        unknown = await http.get("/api/orders/o1_01JD0Z3N5W8YQ2T4V6X8Z0A1B2")
    assert paid.json()["status"] == "paid"
    assert fetched.json()["status"] == "paid"
    assert engine.snapshot(1).sold == 2
    assert_problem(products, 503, "database_unavailable")  # the catalog was never loaded
    assert_problem(unknown, 503, "database_unavailable")  # the engine does not know it; only the database could


async def test_the_catalog_is_served_stale_while_the_database_is_down(
    client: httpx.AsyncClient, engine_sync: Engine
) -> None:
    await client.put("/api/admin/products/4", json={"name": "Lamp", "price_cents": 10, "stock": 3}, headers=ADMIN)
    assert (await client.get("/api/products/4")).status_code == 200
    app: Any = client._transport.app  # type: ignore[attr-defined]
    catalog = app.state.services.catalog
    catalog.db = make_engine(DEAD_DATABASE)
    catalog.invalidate()

    response = await client.get("/api/products/4")

    assert (response.status_code, response.json()["name"], response.json()["available"]) == (200, "Lamp", 3)
    catalog.db.dispose()


async def test_unknown_path_is_a_404_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/nothing-here"), 404, "not_found")


async def test_wrong_method_is_a_405_problem_naming_the_allowed_ones(client: httpx.AsyncClient) -> None:
    response = await client.patch("/api/holds/h1_01JD0Z3N5W8YQ2T4V6X8Z0A1B2")
    assert_problem(response, 405, "method_not_allowed")
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "DELETE"}
    assert_problem(await client.get("/api/holds"), 405, "method_not_allowed")


async def test_a_bug_is_a_logged_500_problem(api_settings: Any, real_redis: redis.Redis) -> None:
    app = create_app(api_settings)

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    app.state.services.engine.reserve = broken
    async with serve(app, conform=False) as http:  # a 500 is, rightly, in no documented answer
        with capture_logs() as logs:
            response = await http.post("/api/holds", json={"product_id": 1, "quantity": 1})
    body = assert_problem(response, 500, "internal_error")
    assert "a bug" not in body["detail"]  # internals stay in the log
    assert [e for e in logs if e["event"] == "internal_error"]


async def test_metrics_count_engine_events_and_time_requests(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    engine_sync.set_stock(5, 3)  # never sold out: a stock transition would wait in the outbox
    await hold(client, 5)
    await hold(client, 5)
    await client.post("/api/holds", json={"product_id": 5, "quantity": 2})

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'flashsale_holds_created_total{product_id="5"} 2.0' in text
    assert 'flashsale_holds_refused_total{product_id="5",reason="out_of_stock"} 1.0' in text
    assert 'flashsale_stock_units{product_id="5",state="held"} 2.0' in text
    assert 'flashsale_outbox_backlog{product_id="5"} 0.0' in text
    assert "flashsale_engine_up 1.0" in text
    assert re.search(r'flashsale_http_request_duration_seconds_count\{method="POST",route="/api/holds"\} [1-9]', text)
    assert re.search(r'flashsale_http_requests_total\{method="POST",route="/api/holds",status="409"\} [1-9]', text)


async def test_metrics_count_orders_payments_and_duplicates(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    engine_sync.set_stock(6, 10)
    created = await order(client, 6)
    for _ in range(2):
        await client.post(
            "/api/payments/webhook",
            **_as_kwargs(signed({"order_id": created["order_id"], "transaction_id": "t-m", "status": "success"})),
        )
    text = (await client.get("/metrics")).text
    assert 'flashsale_orders_created_total{product_id="6"} 1.0' in text
    assert 'flashsale_payments_total{product_id="6",result="success"} 1.0' in text
    assert 'flashsale_duplicate_webhooks_total{product_id="6"} 1.0' in text
    assert 'flashsale_outbox_backlog{product_id="6"} 3.0' in text  # order_created, order_paid, payment


async def test_metrics_count_refunds_required_and_reused_transaction_ids(
    client: httpx.AsyncClient, engine_sync: Engine
) -> None:
    engine_sync.set_stock(6, 10)
    engine_sync.set_stock(7, 10)
    paid, other = await order(client, 6), await order(client, 7)
    for order_id, txn in ((paid["order_id"], "t-1"), (paid["order_id"], "t-2"), (other["order_id"], "t-1")):
        await client.post(
            "/api/payments/webhook",
            **_as_kwargs(signed({"order_id": order_id, "transaction_id": txn, "status": "success"})),
        )

    text = (await client.get("/metrics")).text

    assert 'flashsale_refunds_required_total{product_id="6"} 1.0' in text
    assert 'flashsale_refunds_required_total{product_id="7"} 0.0' in text
    assert re.search(r"^flashsale_webhook_transactions_reused_total [1-9]", text, re.MULTILINE)


async def test_openapi_document_describes_every_route(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    served = response.json()
    assert served == document()
    assert served["openapi"].startswith("3.")
    app: Any = client._transport.app  # type: ignore[attr-defined]
    routes = {
        route.path: {m.lower() for m in route.methods or ()} - {"head"}
        for route in app.routes
        if isinstance(route, Route)
    }
    documented = {path: set(item) for path, item in served["paths"].items()}
    assert documented == routes


def test_openapi_references_all_resolve() -> None:
    doc = document()
    text = str(doc)
    for name in re.findall(r"#/components/schemas/(\w+)", text):
        assert name in doc["components"]["schemas"]
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                for media in response.get("content", {}):
                    assert (media == "application/problem+json") == (int(status) >= 400), (path, method, status)


def test_a_bad_setting_stops_start_up_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASHSALE_HOLD_TTL_SECONDS", "soon")
    with pytest.raises(ConfigError) as error:
        create_app()
    assert error.value.variable == "FLASHSALE_HOLD_TTL_SECONDS"


async def test_the_rate_limit_lets_requests_through_when_its_redis_is_down(
    redis_url: str, database_url: str, tmp_path: Path, real_redis: redis.Redis, db: sa.Engine
) -> None:
    Engine(real_redis).set_stock(1, 10)
    settings = make_settings(
        redis_url, database_url, tmp_path, FLASHSALE_RATE_LIMIT_PER_SECOND="1", FLASHSALE_QUEUE_REDIS_URL=_dead_redis()
    )
    async with serve(create_app(settings)) as http:
        for _ in range(3):
            await hold(http, 1)
