"""Webhook signatures: replays, reused signatures, wrong secrets and malformed headers get 401 and change nothing."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections import Counter
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from engine import Engine
from shared import signing
from tests.support.api import ADMIN_TOKEN, WEBHOOK_SECRET, EngineCalls, assert_problem, order

pytestmark = pytest.mark.anyio

WEBHOOK = "/api/payments/webhook"


def body(order_id: str, txn: str = "txn-1", status: str = "success", **extra: Any) -> bytes:
    return orjson.dumps({"order_id": order_id, "transaction_id": txn, "status": status, **extra})


def headers_for(raw: bytes, *, secret: str = WEBHOOK_SECRET, at: float | None = None) -> dict[str, str]:
    return {**signing.headers(secret, raw, now=at), "Content-Type": "application/json"}


async def pending_order(http: httpx.AsyncClient, engine: Engine) -> str:
    engine.set_stock(1, 10, price_cents=500)
    created = await order(http, 1)
    return str(created["order_id"])


def unchanged(engine: Engine, order_id: str, outbox_before: int) -> None:
    assert engine.order(order_id).status == "pending"
    assert engine.snapshot(1).sold == 0
    assert engine.outbox_backlog(1) == outbox_before, "a refused webhook wrote to the outbox"
    assert not engine.stats(1).get("paid")
    assert not engine.stats(1).get("duplicate")


@pytest.mark.parametrize("age", [-301, -3600, -86_400 * 30, 301, 86_400])
async def test_a_webhook_signed_outside_the_time_window_is_refused_and_changes_nothing(
    app_and_client: tuple[Starlette, httpx.AsyncClient], engine_sync: Engine, monkeypatch: pytest.MonkeyPatch, age: int
) -> None:
    app, http = app_and_client
    order_id = await pending_order(http, engine_sync)
    before = engine_sync.outbox_backlog(1)
    spy = EngineCalls(app, monkeypatch)
    raw = body(order_id)

    response = await http.post(WEBHOOK, content=raw, headers=headers_for(raw, at=time.time() + age))

    assert_problem(response, 401, "invalid_signature")
    assert spy.calls == [], "the engine was called before the signature was checked"
    unchanged(engine_sync, order_id, before)


def _reused(order_id: str, other_order: str) -> list[bytes]:
    original = body(order_id)
    return [
        body(order_id, status="failed"),
        body(other_order),
        body(order_id, txn="txn-2"),
        body(order_id, amount_cents=1),
        original + b" ",
        original.replace(b'"success"', b'"success" '),
        b"[" + original + b"]",
    ]


async def test_a_signature_reused_on_another_body_is_refused_and_changes_nothing(
    app_and_client: tuple[Starlette, httpx.AsyncClient], engine_sync: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, http = app_and_client
    order_id = await pending_order(http, engine_sync)
    other = str((await order(http, 1))["order_id"])
    before = engine_sync.outbox_backlog(1)
    signed_headers = headers_for(body(order_id))
    spy = EngineCalls(app, monkeypatch)

    for forged in _reused(order_id, other):
        response = await http.post(WEBHOOK, content=forged, headers=signed_headers)
        assert_problem(response, 401, "invalid_signature")

    assert spy.calls == []
    unchanged(engine_sync, order_id, before)
    assert engine_sync.order(other).status == "pending"


@pytest.mark.parametrize(
    "secret",
    [
        "wrong-secret-0123456789",
        WEBHOOK_SECRET + "x",
        WEBHOOK_SECRET[:-1],
        WEBHOOK_SECRET.upper(),
        ADMIN_TOKEN,
        "",
    ],
)
async def test_a_webhook_signed_with_another_secret_is_refused_and_changes_nothing(
    app_and_client: tuple[Starlette, httpx.AsyncClient],
    engine_sync: Engine,
    monkeypatch: pytest.MonkeyPatch,
    secret: str,
) -> None:
    app, http = app_and_client
    order_id = await pending_order(http, engine_sync)
    before = engine_sync.outbox_backlog(1)
    spy = EngineCalls(app, monkeypatch)
    raw = body(order_id)

    response = await http.post(WEBHOOK, content=raw, headers=headers_for(raw, secret=secret))

    assert_problem(response, 401, "invalid_signature")
    assert spy.calls == []
    unchanged(engine_sync, order_id, before)


def _malformed(raw: bytes) -> list[dict[str, str]]:
    good = signing.headers(WEBHOOK_SECRET, raw)
    stamp, signature = good[signing.TIMESTAMP_HEADER], good[signing.SIGNATURE_HEADER]
    digest = signature.split("=", 1)[1]
    return [
        {},
        {signing.TIMESTAMP_HEADER: stamp},
        {signing.SIGNATURE_HEADER: signature},
        {signing.TIMESTAMP_HEADER: stamp, signing.SIGNATURE_HEADER: digest},
        {signing.TIMESTAMP_HEADER: stamp, signing.SIGNATURE_HEADER: "v0=" + digest},
        {signing.TIMESTAMP_HEADER: stamp, signing.SIGNATURE_HEADER: "v1=" + digest.upper()},
        {signing.TIMESTAMP_HEADER: stamp, signing.SIGNATURE_HEADER: "v1=" + digest[:-1]},
        {signing.TIMESTAMP_HEADER: stamp, signing.SIGNATURE_HEADER: "v1=" + "0" * 64},
        {signing.TIMESTAMP_HEADER: stamp, signing.SIGNATURE_HEADER: signature + "," + signature},
        {signing.TIMESTAMP_HEADER: stamp, signing.SIGNATURE_HEADER: "v1=" + "ä" * 64},
        {signing.TIMESTAMP_HEADER: stamp, signing.SIGNATURE_HEADER: "v1=" + "a" * 8000},
        {signing.TIMESTAMP_HEADER: stamp + ".0", signing.SIGNATURE_HEADER: signature},
        {signing.TIMESTAMP_HEADER: "-" + stamp, signing.SIGNATURE_HEADER: signature},
        {signing.TIMESTAMP_HEADER: " " + stamp, signing.SIGNATURE_HEADER: signature},
        {signing.TIMESTAMP_HEADER: "1e9", signing.SIGNATURE_HEADER: signature},
        {signing.TIMESTAMP_HEADER: "9" * 40, signing.SIGNATURE_HEADER: signature},
        {signing.TIMESTAMP_HEADER: "٣" * 10, signing.SIGNATURE_HEADER: signature},
    ]


async def test_malformed_signature_headers_are_refused_and_change_nothing(
    app_and_client: tuple[Starlette, httpx.AsyncClient], engine_sync: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, http = app_and_client
    order_id = await pending_order(http, engine_sync)
    before = engine_sync.outbox_backlog(1)
    spy = EngineCalls(app, monkeypatch)
    raw = body(order_id)

    for headers in _malformed(raw):
        sent = {name: value.encode() for name, value in {**headers, "Content-Type": "application/json"}.items()}
        response = await http.post(WEBHOOK, content=raw, headers=sent)
        assert_problem(response, 401, "invalid_signature")

    assert spy.calls == []
    unchanged(engine_sync, order_id, before)


async def test_the_signature_is_compared_in_constant_time(
    app_and_client: tuple[Starlette, httpx.AsyncClient], engine_sync: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, http = app_and_client
    order_id = await pending_order(http, engine_sync)
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(signing.hmac, "compare_digest", spy)
    raw = body(order_id)
    refused = await http.post(WEBHOOK, content=raw, headers=headers_for(raw, secret="wrong-secret-0123456789"))
    accepted = await http.post(WEBHOOK, content=raw, headers=headers_for(raw))

    assert (refused.status_code, accepted.status_code) == (401, 200)
    assert len(compared) == 2, "every signature check goes through hmac.compare_digest"


async def test_one_signed_request_replayed_inside_the_window_applies_once(
    app_and_client: tuple[Starlette, httpx.AsyncClient], engine_sync: Engine
) -> None:
    _, http = app_and_client
    order_id = await pending_order(http, engine_sync)
    raw = body(order_id)
    headers = headers_for(raw)

    answers = await asyncio.gather(*(http.post(WEBHOOK, content=raw, headers=headers) for _ in range(20)))

    assert Counter((r.status_code, r.json()["applied"], r.json()["duplicate"]) for r in answers) == {
        (200, True, False): 1,
        (200, True, True): 19,
    }
    payments = [e for e in engine_sync.read_outbox(1) if e.event == "payment"]
    assert len(payments) == 1
    assert engine_sync.snapshot(1).sold == 1


@pytest.mark.parametrize("transaction_id", ["a|b", "|", "txn|1|success"])
async def test_a_signed_transaction_id_the_engine_cannot_store_is_422_not_500(
    app_and_client: tuple[Starlette, httpx.AsyncClient], engine_sync: Engine, transaction_id: str
) -> None:
    _, http = app_and_client
    order_id = await pending_order(http, engine_sync)
    before = engine_sync.outbox_backlog(1)
    raw = body(order_id, txn=transaction_id)

    response = await http.post(WEBHOOK, content=raw, headers=headers_for(raw))

    problem = assert_problem(response, 422, "validation_error")
    assert [e["field"] for e in problem["errors"]] == ["transaction_id"]
    unchanged(engine_sync, order_id, before)
