"""The API under test: settings on the test Redis and database, a client, signed webhooks, and a check of
every answer against the OpenAPI document."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
import sqlalchemy as sa
from starlette.applications import Starlette

from engine import Engine
from shared import signing
from shared.settings import Settings, load

WEBHOOK_SECRET = "test-webhook-secret-0123456789"
ADMIN_TOKEN = "test-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


TEST_REDIS_TIMEOUT_SECONDS = "30"
"""The engine deadline of the API under test, unless a test sets its own (the deadline's tests do): a burst of
concurrent requests on a machine busy with parallel tests may take longer than the 2 s default, which would turn
answers these tests check into 503s. A call that hangs still ends, and fails its test."""


def make_settings(redis_url: str, database_url: str, var_dir: Path, **env: str) -> Settings:
    return load(
        {
            "FLASHSALE_REDIS_TIMEOUT_SECONDS": TEST_REDIS_TIMEOUT_SECONDS,
            "FLASHSALE_REDIS_URL": redis_url,
            "FLASHSALE_DATABASE_URL": database_url,
            "FLASHSALE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "FLASHSALE_ADMIN_TOKEN": ADMIN_TOKEN,
            "FLASHSALE_LOG_FORMAT": "json",
            "FLASHSALE_VAR_DIR": str(var_dir),
            **env,
        }
    )


def signed(body: Any, *, secret: str = WEBHOOK_SECRET, now: float | None = None) -> tuple[bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return raw, {**signing.headers(secret, raw, now=now), "Content-Type": "application/json"}


class Conformance:
    """Every answer's status and content type must be documented for its operation, and its JSON body
    must fit the documented schema (the subset of JSON Schema the document uses)."""

    def __init__(self) -> None:
        from api.openapi import document

        self.document = document()
        self.operations = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path, item)
            for path, item in self.document["paths"].items()
        ]

    def operation(self, method: str, path: str) -> dict[str, Any] | None:
        for pattern, _, item in self.operations:
            if pattern.match(path):
                return item.get(method.lower())  # type: ignore[no-any-return]
        return None

    def check(self, method: str, path: str, status: int, content_type: str, body: bytes) -> None:
        operation = self.operation(method, path)
        if operation is None:
            assert status in (404, 405), f"{method} {path} is undocumented but answered {status}"
            assert content_type == "application/problem+json"
            return
        responses = operation["responses"]
        assert str(status) in responses, f"{method} {path}: status {status} is not documented: {body[:300]!r}"
        content = responses[str(status)].get("content")
        if content is None:
            assert body == b"", f"{method} {path} {status}: documented without a body"
            return
        media = content_type.split(";")[0].strip()
        assert media in content, f"{method} {path} {status}: content type {media} not documented"
        where = f"{method} {path} {status}"
        if media.endswith("json"):
            self.validate(orjson.loads(body), content[media]["schema"], where)
        elif media == "text/event-stream":  # the schema describes one event, as OpenAPI 3.0 tools read it
            for number, event in enumerate(server_sent_events(body)):
                self.validate(event, content[media]["schema"], f"{where} event {number}")

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        return schema

    def validate(self, value: Any, schema: dict[str, Any], where: str) -> None:
        schema = self.resolve(schema)
        for part in schema.get("allOf", []):
            self.validate(value, part, where)
        if "oneOf" in schema:
            self._one_of(value, schema["oneOf"], where)
        if value is None:
            assert schema.get("nullable") or "type" not in schema, f"{where}: null where {schema} expected"
            return
        kind = schema.get("type")
        types = {"object": dict, "array": list, "string": str, "boolean": bool}
        if kind == "integer":
            assert type(value) is int, f"{where}: {value!r} is not an integer"
        elif kind == "number":
            assert type(value) in (int, float), f"{where}: {value!r} is not a number"
        elif kind is not None:
            assert isinstance(value, types[kind]), f"{where}: {value!r} is not {kind}"
        if "enum" in schema:
            assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
        if "pattern" in schema:
            assert re.search(schema["pattern"], value), f"{where}: {value!r} does not match {schema['pattern']}"
        if "x-contentSchema" in schema:  # a string holding JSON (JSON Schema 2019-09's contentSchema)
            assert schema.get("x-contentMediaType") == "application/json", f"{where}: {schema}"
            self.validate(orjson.loads(value), schema["x-contentSchema"], f"{where} (its JSON)")
        if "minimum" in schema:
            assert value >= schema["minimum"], f"{where}: {value!r} < {schema['minimum']}"
        if kind == "object":
            for name in schema.get("required", []):
                assert name in value, f"{where}: {name!r} missing from {value!r}"
            for name, sub in schema.get("properties", {}).items():
                if name in value:
                    self.validate(value[name], sub, f"{where}.{name}")
            if schema.get("additionalProperties") is False:
                extra = set(value) - set(schema.get("properties", {}))
                assert not extra, f"{where}: undocumented fields {extra}"
        if kind == "array":
            for item in value:
                self.validate(item, schema.get("items", {}), f"{where}[]")

    def _one_of(self, value: Any, options: list[dict[str, Any]], where: str) -> None:
        faults: list[str] = []
        for option in options:
            try:
                self.validate(value, option, where)
            except AssertionError as fault:
                faults.append(str(fault))
        matched = len(options) - len(faults)
        assert matched == 1, f"{where}: {value!r} matches {matched} of {len(options)} oneOf options\n" + "\n".join(
            faults
        )


def server_sent_events(body: bytes) -> list[dict[str, str]]:
    """The events of a text/event-stream as an EventSource dispatches them (the WHATWG parsing rules): ``event``
    (``message`` when unnamed), ``data`` (its lines joined) and ``id``, the last one set by this or an earlier
    event. A block without data (``retry:`` alone) dispatches nothing."""
    events: list[dict[str, str]] = []
    name, data, last_id = "", [], None
    for line in body.decode("utf-8").removeprefix("\ufeff").splitlines():
        if not line:
            if data:
                event = {"event": name or "message", "data": "\n".join(data)}
                events.append(event if last_id is None else {**event, "id": last_id})
            name, data = "", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
        elif field == "id" and "\0" not in value:
            last_id = value
    return events


@cache
def conformance() -> Conformance:
    return Conformance()


async def _conform(response: httpx.Response) -> None:
    await response.aread()
    request = response.request
    if request.method != "HEAD":
        content_type = response.headers.get("content-type", "")
        conformance().check(request.method, request.url.path, response.status_code, content_type, response.content)


@asynccontextmanager
async def serve(app: Starlette, *, conform: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, and a client that holds every answer to the OpenAPI document."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    hooks = {"response": [_conform]} if conform else {}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://flashsale.test", event_hooks=hooks) as http,
    ):
        yield http


@pytest.fixture
def api_settings(redis_url: str, database_url: str, tmp_path: Path) -> Settings:
    return make_settings(redis_url, database_url, tmp_path)


@pytest.fixture
def engine_sync(real_redis: redis.Redis) -> Engine:
    """The engine on the flushed test Redis, for arranging and checking state behind the API's back."""
    return Engine(real_redis)


@pytest.fixture
async def client(api_settings: Settings, real_redis: redis.Redis, db: sa.Engine) -> AsyncIterator[httpx.AsyncClient]:
    from api.app import create_app  # here, not at the top: this plugin loads for every test module

    async with serve(create_app(api_settings)) as http:
        yield http


async def hold(client: httpx.AsyncClient, product_id: int, quantity: int = 1, **extra: Any) -> dict[str, Any]:
    response = await client.post("/api/holds", json={"product_id": product_id, "quantity": quantity, **extra})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def order(client: httpx.AsyncClient, product_id: int, quantity: int = 1, **extra: Any) -> dict[str, Any]:
    held = await hold(client, product_id, quantity, **extra)
    response = await client.post("/api/orders", json={"hold_id": held["hold_id"]})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert {"type", "title", "detail"} <= set(body)
    return body


class EngineCalls:
    """Every engine script the app runs, with its keys, from the moment this is installed."""

    def __init__(self, app: Starlette, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        engine = app.state.services.engine
        run = engine._run

        async def spied(call: Any) -> Any:
            self.calls.append((call.script, list(call.keys)))
            return await run(call)

        monkeypatch.setattr(engine, "_run", spied)


@pytest.fixture
async def app_and_client(
    api_settings: Settings, real_redis: redis.Redis, db: sa.Engine
) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """The app itself (to spy on its engine) and a client serving it."""
    from api.app import create_app  # here, not at the top: this plugin loads for every test module

    app = create_app(api_settings)
    async with serve(app) as http:
        yield app, http
