"""GET /api/products(/{id}) and PUT /api/admin/products/{id}, against real Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx
import pytest
import redis
import sqlalchemy as sa

from api.app import create_app
from engine import Engine
from persistence.catalog import get_product
from tests.support.api import ADMIN, assert_problem, hold, make_settings, serve
from tests.support.catalog import CHANGE, LAMP, NEW, SetStockFault, Stores, catalog_refuses_writes, stores

pytestmark = pytest.mark.anyio

WIDGET = {"name": "Widget", "price_cents": 1999, "stock": 100}


async def test_put_creates_a_product_in_the_database_and_the_engine(
    client: httpx.AsyncClient, engine_sync: Engine, db: sa.Engine
) -> None:
    spec = {
        **WIDGET,
        "max_per_customer": 2,
        "sale_starts_at": "2020-01-01T00:00:00Z",
        "sale_ends_at": "2100-01-01T01:00:00+01:00",
    }

    response = await client.put("/api/admin/products/7", json=spec, headers=ADMIN)

    assert response.status_code == 201
    assert response.json() == {
        "id": 7,
        "name": "Widget",
        "price_cents": 1999,
        "stock": 100,
        "available": 100,
        "max_per_customer": 2,
        "sale_starts_at": "2020-01-01T00:00:00.000Z",
        "sale_ends_at": "2100-01-01T00:00:00.000Z",
        "waiting_room": False,
        "admit_per_second": None,
        "admission_ttl_seconds": None,
    }
    stored = get_product(db, 7)
    assert stored is not None
    assert (stored.name, stored.stock, stored.max_per_customer) == ("Widget", 100, 2)
    snapshot = engine_sync.snapshot(7)
    assert (snapshot.total, snapshot.price_cents, snapshot.max_per_customer) == (100, 1999, 2)


async def test_a_put_replaces_every_field_so_one_without_waiting_room_closes_the_room(
    client: httpx.AsyncClient, engine_sync: Engine
) -> None:
    opened = await client.put("/api/admin/products/7", json={**WIDGET, "waiting_room": True}, headers=ADMIN)
    assert opened.json()["waiting_room"] is True

    response = await client.put("/api/admin/products/7", json={**WIDGET, "stock": 120}, headers=ADMIN)

    assert response.status_code == 200
    assert response.json()["waiting_room"] is False
    assert engine_sync.snapshot(7).waiting_room is False


async def test_put_again_updates_with_200(client: httpx.AsyncClient, engine_sync: Engine, db: sa.Engine) -> None:
    await client.put("/api/admin/products/7", json=WIDGET, headers=ADMIN)
    await hold(client, 7, 30)
    assert (await client.get("/api/products/7")).json()["name"] == "Widget"

    response = await client.put("/api/admin/products/7", json={**WIDGET, "name": "Gadget", "stock": 40}, headers=ADMIN)

    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["stock"], body["available"]) == ("Gadget", 40, 10)
    assert (await client.get("/api/products/7")).json()["name"] == "Gadget"  # the cache is dropped on a write


async def test_lowering_stock_below_what_is_committed_is_409(
    client: httpx.AsyncClient, engine_sync: Engine, db: sa.Engine
) -> None:
    await client.put("/api/admin/products/7", json=WIDGET, headers=ADMIN)
    await hold(client, 7, 30)

    response = await client.put("/api/admin/products/7", json={**WIDGET, "stock": 29}, headers=ADMIN)

    body = assert_problem(response, 409, "stock_below_committed")
    assert body["committed"] == 30
    assert engine_sync.snapshot(7).total == 100
    stored = get_product(db, 7)
    assert stored is not None
    assert stored.stock == 100


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "Basic dGVzdA=="}, {"Authorization": "Bearer"}],
)
async def test_admin_without_the_right_token_is_401(
    client: httpx.AsyncClient, engine_sync: Engine, headers: dict[str, str]
) -> None:
    response = await client.put("/api/admin/products/7", json=WIDGET, headers=headers)
    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert engine_sync.product_ids() == []


async def test_admin_is_403_when_no_token_is_configured(
    redis_url: str, database_url: str, tmp_path: Path, real_redis: redis.Redis, db: sa.Engine
) -> None:
    settings = make_settings(redis_url, database_url, tmp_path, FLASHSALE_ADMIN_TOKEN="")
    async with serve(create_app(settings)) as http:
        response = await http.put("/api/admin/products/7", json=WIDGET, headers=ADMIN)
    assert_problem(response, 403, "admin_disabled")
    assert Engine(real_redis).product_ids() == []


@pytest.mark.parametrize(
    ("starts", "ends", "stored"),
    [
        ("2000-01-01t00:00:00z", None, "2000-01-01T00:00:00.000Z"),  # the lower-case t and z RFC 3339 allows
        ("2030-01-01T00:00:00.123456789+02:00", None, "2029-12-31T22:00:00.123Z"),
        (None, "2999-12-31T23:59:59-23:59", "3000-01-01T23:58:59.000Z"),  # the latest a bound can name
    ],
)
async def test_put_takes_every_sale_bound_form_the_document_allows(
    client: httpx.AsyncClient, starts: str | None, ends: str | None, stored: str
) -> None:
    spec = {**WIDGET, "sale_starts_at": starts, "sale_ends_at": ends}

    response = await client.put("/api/admin/products/7", json=spec, headers=ADMIN)

    assert response.status_code == 201, response.text
    body = response.json()
    assert stored in (body["sale_starts_at"], body["sale_ends_at"])


@pytest.mark.parametrize(
    ("spec", "fields"),
    [
        ({}, ["name", "price_cents", "stock"]),
        ({**WIDGET, "name": "  "}, ["name"]),
        ({**WIDGET, "name": "x" * 201}, ["name"]),
        ({**WIDGET, "price_cents": -1}, ["price_cents"]),
        ({**WIDGET, "stock": 10**13}, ["stock"]),
        ({**WIDGET, "stock": "5"}, ["stock"]),
        ({**WIDGET, "max_per_customer": -1}, ["max_per_customer"]),
        ({**WIDGET, "sale_starts_at": "tomorrow"}, ["sale_starts_at"]),
        ({**WIDGET, "sale_starts_at": "2026-01-01"}, ["sale_starts_at"]),
        ({**WIDGET, "sale_starts_at": "2026-01-01T00:00:00"}, ["sale_starts_at"]),
        ({**WIDGET, "sale_starts_at": "1960-01-01T00:00:00Z"}, ["sale_starts_at"]),
        ({**WIDGET, "sale_ends_at": "2026-02-30T00:00:00Z"}, ["sale_ends_at"]),
        ({**WIDGET, "sale_starts_at": "2026-01-01 00:00:00Z"}, ["sale_starts_at"]),  # RFC 3339 wants the T
        ({**WIDGET, "sale_starts_at": "2026-12-31T23:59:60Z"}, ["sale_starts_at"]),  # no leap second
        ({**WIDGET, "sale_starts_at": "3000-01-01T00:00:00Z"}, ["sale_starts_at"]),
        ({**WIDGET, "sale_starts_at": "2026-01-01T00:00:00.1234567891Z"}, ["sale_starts_at"]),
        ({**WIDGET, "name": "\u3000\u00a0 \u2009"}, ["name"]),  # white space only, however wide
        (
            {**WIDGET, "sale_starts_at": "2030-01-01T00:00:00Z", "sale_ends_at": "2029-01-01T00:00:00Z"},
            ["sale_ends_at"],
        ),
        ({**WIDGET, "colour": "red"}, ["colour"]),
    ],
)
async def test_put_with_fields_at_fault_is_422_and_changes_nothing(
    client: httpx.AsyncClient, engine_sync: Engine, db: sa.Engine, spec: dict[str, object], fields: list[str]
) -> None:
    response = await client.put("/api/admin/products/7", json=spec, headers=ADMIN)
    problem = assert_problem(response, 422, "validation_error")
    assert [e["field"] for e in problem["errors"]] == fields
    assert engine_sync.product_ids() == []
    assert get_product(db, 7) is None


@pytest.mark.parametrize("product_id", ["0", "abc", "-1", "01", "1000000000000000", "1.5"])
async def test_a_product_id_of_the_wrong_shape_is_422(client: httpx.AsyncClient, product_id: str) -> None:
    for response in (
        await client.get(f"/api/products/{product_id}"),
        await client.put(f"/api/admin/products/{product_id}", json=WIDGET, headers=ADMIN),
    ):
        problem = assert_problem(response, 422, "validation_error")
        assert problem["errors"][0]["field"] == "id"


async def test_get_product_reports_live_availability(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    await client.put("/api/admin/products/3", json={**WIDGET, "stock": 5}, headers=ADMIN)
    first = (await client.get("/api/products/3")).json()
    held = await hold(client, 3, 2)
    second = (await client.get("/api/products/3")).json()
    await client.delete(f"/api/holds/{held['hold_id']}")
    third = (await client.get("/api/products/3")).json()

    assert [first["available"], second["available"], third["available"]] == [5, 3, 5]
    assert set(first) == {
        "id",
        "name",
        "price_cents",
        "stock",
        "available",
        "max_per_customer",
        "sale_starts_at",
        "sale_ends_at",
        "waiting_room",
        "admit_per_second",
        "admission_ttl_seconds",
    }
    assert (first["max_per_customer"], first["sale_starts_at"], first["sale_ends_at"]) == (None, None, None)


async def test_available_counts_a_hold_that_expired_a_moment_ago(
    redis_url: str, database_url: str, tmp_path: Path, real_redis: redis.Redis, db: sa.Engine
) -> None:
    settings = make_settings(redis_url, database_url, tmp_path, FLASHSALE_HOLD_TTL_SECONDS="1")
    async with serve(create_app(settings)) as http:
        await http.put("/api/admin/products/3", json={**WIDGET, "stock": 5}, headers=ADMIN)
        await hold(http, 3, 4)
        assert (await http.get("/api/products/3")).json()["available"] == 1
        await asyncio.sleep(1.05)
        assert (await http.get("/api/products/3")).json()["available"] == 5


async def test_get_unknown_product_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/products/12345"), 404, "product_not_found")


async def test_list_products_in_the_same_shape(client: httpx.AsyncClient) -> None:
    for product_id in (2, 1):
        await client.put(f"/api/admin/products/{product_id}", json={**WIDGET, "name": f"P{product_id}"}, headers=ADMIN)
    await hold(client, 2, 5)

    response = await client.get("/api/products")

    assert response.status_code == 200
    products = response.json()
    assert [(p["id"], p["name"], p["available"]) for p in products] == [(1, "P1", 100), (2, "P2", 95)]
    assert products[0] == (await client.get("/api/products/1")).json()


async def test_list_is_empty_without_products(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/products")
    assert (response.status_code, response.json()) == (200, [])


@pytest.fixture(params=["new", "existing"])
async def before(
    request: pytest.FixtureRequest, client: httpx.AsyncClient, engine_sync: Engine, db: sa.Engine
) -> Stores:
    """Product 3 in neither store (new), or put as LAMP (existing), as the failing put finds it."""
    if request.param == "existing":
        assert (await client.put("/api/admin/products/3", json=LAMP, headers=ADMIN)).status_code == 201
    return stores(engine_sync, db)


@pytest.mark.parametrize(
    ("step", "status", "code"),
    [
        ("catalog_refuses", 503, "catalog_write_failed"),
        ("engine_refuses", 409, "stock_below_committed"),
        ("engine_lost_the_call", 503, "engine_unavailable"),
    ],
)
async def test_a_put_that_fails_at_any_step_answers_a_problem_and_changes_neither_store(
    client: httpx.AsyncClient,
    engine_sync: Engine,
    db: sa.Engine,
    monkeypatch: pytest.MonkeyPatch,
    before: Stores,
    step: str,
    status: int,
    code: str,
) -> None:
    body = {**LAMP, **CHANGE}
    if step == "engine_refuses":
        # A buyer takes 6 units between the put's check and the engine's change; for the new product,
        # the engine already sells it without a catalog row (a catalog write lost before this fix).
        if before == (None, None):
            engine_sync.set_stock(3, 10, price_cents=1999)
            before = (None, (10, 1999))
        SetStockFault(monkeypatch, "refuses")
        body["stock"] = 5
    elif step == "engine_lost_the_call":
        SetStockFault(monkeypatch, "lost_before")

    with catalog_refuses_writes(db) if step == "catalog_refuses" else contextlib.nullcontext():
        response = await client.put("/api/admin/products/3", json=body, headers=ADMIN)

    problem = assert_problem(response, status, code)
    if status == 503:
        assert response.headers["Retry-After"] == "1"
    if code == "catalog_write_failed":
        assert "nothing was changed" in problem["detail"]
    assert stores(engine_sync, db) == before
    listed = (await client.get("/api/products/3")).status_code
    assert listed == (404 if before[0] is None else 200)


async def test_a_put_whose_engine_answer_was_lost_is_kept_in_both_stores(
    client: httpx.AsyncClient, engine_sync: Engine, db: sa.Engine, monkeypatch: pytest.MonkeyPatch, before: Stores
) -> None:
    SetStockFault(monkeypatch, "lost_after")

    response = await client.put("/api/admin/products/3", json={**LAMP, **CHANGE}, headers=ADMIN)

    assert response.status_code == (201 if before == (None, None) else 200), response.text
    assert stores(engine_sync, db) == NEW
    assert (await client.get("/api/products/3")).json()["name"] == "Big lamp"


async def test_a_new_product_whose_engine_went_down_is_not_on_sale_and_a_second_put_converges(
    client: httpx.AsyncClient, engine_sync: Engine, db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    fault = SetStockFault(monkeypatch, "down")

    response = await client.put("/api/admin/products/3", json={**LAMP, **CHANGE}, headers=ADMIN)

    assert_problem(response, 503, "product_put_incomplete")
    fault.heal()
    assert stores(engine_sync, db) == (("Big lamp", 20, 2999), None)  # the catalog row, and nothing to sell
    assert_problem(await client.get("/api/products/3"), 404, "product_not_found")
    assert_problem(await client.post("/api/holds", json={"product_id": 3, "quantity": 1}), 404, "product_not_found")
    again = await client.put("/api/admin/products/3", json={**LAMP, **CHANGE}, headers=ADMIN)
    assert again.status_code == 200, again.text
    assert stores(engine_sync, db) == NEW
