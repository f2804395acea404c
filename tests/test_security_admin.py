"""Admin endpoints: nothing passes without the token, the comparison is constant-time, refusals touch nothing."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa
from starlette.applications import Starlette

from api import auth, threadpool
from api.app import create_app
from api.openapi import document
from engine import Engine
from shared.settings import Settings
from tests.support.api import ADMIN, ADMIN_TOKEN, assert_problem, make_settings, order, serve
from tests.support.database import count_rows

pytestmark = pytest.mark.anyio

ADMIN_OPERATIONS = [
    (method.upper(), path.replace("{id}", "7"))
    for path, item in document()["paths"].items()
    if path.startswith("/api/admin/")
    for method in item
]
PRODUCT = {"name": "Sneaker", "price_cents": 100, "stock": 5}

BAD_AUTHORIZATIONS: list[dict[str, str]] = [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer "},
    {"Authorization": "Bearer wrong-token-0123456789"},
    {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
    {"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}"},
    {"Authorization": f"Bearer {ADMIN_TOKEN.upper()}"},
    {"Authorization": f"Basic {ADMIN_TOKEN}"},
    {"Authorization": f"Token {ADMIN_TOKEN}"},
    {"Authorization": ADMIN_TOKEN},
    {"Authorization": f"Bearer{ADMIN_TOKEN}"},
    {"Authorization": f"Bearer {ADMIN_TOKEN} {ADMIN_TOKEN}"},
    {"X-Admin-Token": ADMIN_TOKEN},
]


class Touches:
    """Engine scripts and database calls made by the app from the moment this is installed."""

    def __init__(self, app: Starlette, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        services = app.state.services
        run, admin_run, call = services.engine._run, services.admin_engine._run, threadpool.call

        async def engine_run(c: Any) -> Any:
            self.calls.append(f"engine {c.script}")
            return await run(c)

        def admin_engine_run(c: Any) -> Any:
            self.calls.append(f"admin engine {c.script}")
            return admin_run(c)

        async def database_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
            self.calls.append(f"database {fn.__name__}")
            return await call(fn, *args, **kwargs)

        monkeypatch.setattr(services.engine, "_run", engine_run)
        monkeypatch.setattr(services.admin_engine, "_run", admin_engine_run)
        monkeypatch.setattr(threadpool, "call", database_call)


async def _app(settings: Settings) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    app = create_app(settings)
    async with serve(app) as http:
        yield app, http


@pytest.fixture
async def app_and_client(
    api_settings: Settings, real_redis: redis.Redis, db: sa.Engine
) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    async for pair in _app(api_settings):
        yield pair


def request_args(method: str, headers: dict[str, str]) -> dict[str, Any]:
    return {"json": PRODUCT, "headers": headers} if method in ("PUT", "POST") else {"headers": headers}


def test_every_admin_operation_is_covered() -> None:
    assert {path for _, path in ADMIN_OPERATIONS} >= {"/api/admin/products/7", "/api/admin/stats", "/api/admin/stream"}


@pytest.mark.parametrize(("method", "path"), ADMIN_OPERATIONS)
async def test_admin_operations_refuse_every_wrong_authorization_before_touching_anything(
    app_and_client: tuple[Starlette, httpx.AsyncClient],
    engine_sync: Engine,
    db: sa.Engine,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    path: str,
) -> None:
    app, http = app_and_client
    touches = Touches(app, monkeypatch)

    for headers in BAD_AUTHORIZATIONS:
        response = await http.request(method, path, **request_args(method, headers))
        assert_problem(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")

    assert touches.calls == [], f"a refused admin request reached {touches.calls}"
    assert engine_sync.product_ids() == []
    assert count_rows(db, "products") == 0


@pytest.mark.parametrize(("method", "path"), ADMIN_OPERATIONS)
async def test_admin_operations_answer_with_the_right_token(
    app_and_client: tuple[Starlette, httpx.AsyncClient], method: str, path: str
) -> None:
    _, http = app_and_client
    if path.endswith("/stream"):
        async with http.stream(method, path, headers=ADMIN) as response:
            assert response.status_code == 200
        return
    response = await http.request(method, path, **request_args(method, ADMIN))
    assert response.status_code in (200, 201), response.text


@pytest.mark.parametrize(("method", "path"), ADMIN_OPERATIONS)
async def test_admin_is_refused_for_everyone_when_no_token_is_configured(
    redis_url: str,
    database_url: str,
    tmp_path: Path,
    real_redis: redis.Redis,
    db: sa.Engine,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    path: str,
) -> None:
    settings = make_settings(redis_url, database_url, tmp_path, FLASHSALE_ADMIN_TOKEN="")
    assert settings.admin_token is None
    async for app, http in _app(settings):
        touches = Touches(app, monkeypatch)
        for headers in [{}, ADMIN, {"Authorization": "Bearer "}]:
            response = await http.request(method, path, **request_args(method, headers))
            assert_problem(response, 403, "admin_disabled")
        assert touches.calls == []


async def test_the_admin_token_is_compared_in_constant_time(
    app_and_client: tuple[Starlette, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, http = app_and_client
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    short = await http.get("/api/admin/stats", headers={"Authorization": "Bearer x"})
    long = await http.get("/api/admin/stats", headers={"Authorization": "Bearer " + "y" * 500})
    right = await http.get("/api/admin/stats", headers=ADMIN)

    assert (short.status_code, long.status_code, right.status_code) == (401, 401, 200)
    assert len(compared) == 3
    # Fixed-length digests: the time taken cannot depend on the token's length either.
    assert {len(a) for a, _ in compared} == {len(b) for _, b in compared} == {hashlib.sha256().digest_size}


async def test_the_simulated_payment_provider_is_off_unless_enabled(
    app_and_client: tuple[Starlette, httpx.AsyncClient], engine_sync: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, http = app_and_client
    engine_sync.set_stock(1, 5)
    created = await order(http, 1)
    touches = Touches(app, monkeypatch)

    response = await http.post("/api/demo/payments", json={"order_id": created["order_id"], "status": "success"})

    assert_problem(response, 403, "demo_provider_disabled")
    assert touches.calls == []
    assert engine_sync.order(created["order_id"]).status == "pending"
