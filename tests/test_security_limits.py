"""Input limits: oversize bodies are 413, absurd numbers and overlong ids are 422, all before any engine call;
ids are parsed, never trusted, so no request can reach another product's keys or make the engine build one."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette

from api.validation import MAX_BODY_BYTES
from engine import Engine
from engine.exceptions import InvalidId
from engine.ids import parse_id
from engine.keys import CLAIMS_COMPLETE_KEY, product_keys, transaction_key
from engine.scripts import SALE_SCRIPTS
from engine.tickets import parse_ticket
from tests.support.api import ADMIN, EngineCalls, assert_problem, hold, order, signed

pytestmark = pytest.mark.anyio

ULID = "01JD0Z3N5W8YQ2T4V6X8Z0A1B2"
KEY = re.compile(r"^fs:\{([1-9][0-9]{0,14})\}:[a-z_]+$")


def _big(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes."""
    head, tail = b'{"product_id": 1, "quantity": 1, "pad": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


BODY_ROUTES = [
    ("POST", "/api/holds", {}),
    ("POST", "/api/orders", {}),
    ("POST", "/api/payments/webhook", {}),
    ("PUT", "/api/admin/products/1", ADMIN),
    ("POST", "/api/demo/payments", {}),
]


@pytest.mark.parametrize(("method", "path", "extra"), BODY_ROUTES)
async def test_a_body_over_16_kib_is_413_before_any_engine_call(
    app_and_client: tuple[Starlette, httpx.AsyncClient],
    engine_sync: Engine,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    path: str,
    extra: dict[str, str],
) -> None:
    app, http = app_and_client
    engine_sync.set_stock(1, 10)
    scripts = EngineCalls(app, monkeypatch)
    raw = _big(MAX_BODY_BYTES + 1)
    headers = {**extra, "Content-Type": "application/json"}
    if path.endswith("webhook"):
        raw, headers = signed(raw)

    declared = await http.request(method, path, content=raw, headers=headers)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit is counted while reading
        for start in range(0, len(raw), 4096):
            yield raw[start : start + 4096]

    streamed = await http.request(method, path, content=chunks(), headers=headers)

    if path.startswith("/api/demo"):  # refused before reading any body: the provider is off
        assert {declared.status_code, streamed.status_code} == {403}
    else:
        assert_problem(declared, 413, "payload_too_large")
        assert_problem(streamed, 413, "payload_too_large")
    assert scripts.calls == []
    assert engine_sync.snapshot(1).held == 0


async def test_a_body_of_exactly_16_kib_is_read(app_and_client: tuple[Starlette, httpx.AsyncClient]) -> None:
    _, http = app_and_client
    response = await http.post("/api/holds", content=_big(MAX_BODY_BYTES), headers={"Content-Type": "application/json"})
    assert_problem(response, 422, "validation_error")  # read, then refused for the unknown field only
    assert [e["field"] for e in response.json()["errors"]] == ["pad"]


ABSURD_QUANTITIES: list[Any] = [0, -1, 10_001, 10**20, 2**63, -(2**63), 1.5, 1e308, "1", True, [], {}, "NaN"]


@pytest.mark.parametrize("quantity", ABSURD_QUANTITIES)
async def test_an_absurd_quantity_is_422_before_any_engine_call(
    app_and_client: tuple[Starlette, httpx.AsyncClient],
    engine_sync: Engine,
    monkeypatch: pytest.MonkeyPatch,
    quantity: Any,
) -> None:
    app, http = app_and_client
    engine_sync.set_stock(1, 10**6)
    scripts = EngineCalls(app, monkeypatch)

    response = await http.post("/api/holds", json={"product_id": 1, "quantity": quantity})

    problem = assert_problem(response, 422, "validation_error")
    assert [e["field"] for e in problem["errors"]] == ["quantity"]
    assert scripts.calls == []


OVERLONG: list[tuple[str, str, dict[str, Any], dict[str, str], str]] = [
    ("POST", "/api/holds", {"product_id": 1, "quantity": 1, "customer_id": "c" * 129}, {}, "customer_id"),
    ("POST", "/api/holds", {"product_id": 10**15, "quantity": 1}, {}, "product_id"),
    ("POST", "/api/holds", {"product_id": 1, "quantity": 1}, {"Idempotency-Key": "k" * 129}, "Idempotency-Key"),
    ("POST", "/api/orders", {"hold_id": "h1_" + ULID + "0" * 30}, {}, "hold_id"),
    ("POST", "/api/orders", {"hold_id": "h" + "9" * 40 + "_" + ULID}, {}, "hold_id"),
    ("GET", "/api/holds/h1_" + ULID * 10, {}, {}, "hold_id"),
    ("DELETE", "/api/holds/h1_" + ULID * 10, {}, {}, "hold_id"),
    ("GET", "/api/orders/o1_" + ULID * 10, {}, {}, "order_id"),
    ("POST", "/api/orders/o1_" + ULID * 10 + "/cancel", {}, {}, "order_id"),
    ("GET", "/api/products/" + "9" * 16, {}, {}, "id"),
]


@pytest.mark.parametrize(("method", "path", "json", "headers", "field"), OVERLONG)
async def test_overlong_ids_are_422_before_any_engine_call(
    app_and_client: tuple[Starlette, httpx.AsyncClient],
    engine_sync: Engine,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    path: str,
    json: dict[str, Any],
    headers: dict[str, str],
    field: str,
) -> None:
    app, http = app_and_client
    engine_sync.set_stock(1, 10)
    scripts = EngineCalls(app, monkeypatch)

    response = await http.request(method, path, json=json or None, headers=headers)

    problem = assert_problem(response, 422, "validation_error")
    assert [e["field"] for e in problem["errors"]] == [field]
    assert scripts.calls == []


async def test_an_overlong_transaction_id_is_422_before_any_engine_call(
    app_and_client: tuple[Starlette, httpx.AsyncClient], engine_sync: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, http = app_and_client
    engine_sync.set_stock(1, 10)
    created = await order(http, 1)
    scripts = EngineCalls(app, monkeypatch)
    raw, headers = signed({"order_id": created["order_id"], "transaction_id": "t" * 129, "status": "success"})

    response = await http.post("/api/payments/webhook", content=raw, headers=headers)

    assert_problem(response, 422, "validation_error")
    assert scripts.calls == []


CRAFTED_IDS = [
    "h1_../../fs:{2}:product",
    "h1}:x{2_" + ULID,
    "h{2}_" + ULID,
    "h1_" + ULID + "\n",
    " h1_" + ULID,
    "h01_" + ULID,
    "h1_" + ULID.lower(),
    "h1_" + "I" * 26,
    "h1_" + ULID[:-1],
    "h1_" + ULID + "}",
    "h-1_" + ULID,
    "h0_" + ULID,
    "h\uff11_" + ULID,  # a full-width digit: a digit to str.isdigit, not to the id grammar
    "o1_" + ULID,  # an order id where a hold id belongs
    "h1_" + ULID + "*",
    "h*_" + ULID,
    "",
]


@pytest.mark.parametrize("crafted", CRAFTED_IDS)
async def test_a_crafted_hold_id_is_refused_before_any_key_is_built(
    app_and_client: tuple[Starlette, httpx.AsyncClient],
    engine_sync: Engine,
    monkeypatch: pytest.MonkeyPatch,
    crafted: str,
) -> None:
    app, http = app_and_client
    scripts = EngineCalls(app, monkeypatch)

    response = await http.post("/api/orders", json={"hold_id": crafted})

    assert_problem(response, 422, "validation_error")
    assert scripts.calls == []


async def test_a_well_formed_id_of_another_product_touches_only_that_products_keys(
    app_and_client: tuple[Starlette, httpx.AsyncClient], engine_sync: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, http = app_and_client
    engine_sync.set_stock(1, 10)
    engine_sync.set_stock(2, 10)
    mine = await hold(http, 1)
    before = engine_sync.snapshot(1)
    ulid = mine["hold_id"].split("_", 1)[1]
    scripts = EngineCalls(app, monkeypatch)

    # Product 1's hold ULID presented as product 2's: looked up in product 2's keys only, and not found there.
    for method, path, json in [
        ("POST", "/api/orders", {"hold_id": f"h2_{ulid}"}),
        ("DELETE", f"/api/holds/h2_{ulid}", None),
        ("GET", f"/api/holds/h2_{ulid}", None),
    ]:
        response = await http.request(method, path, json=json)
        assert_problem(response, 404, "hold_not_found")

    touched = {KEY.match(key).group(1) for _, keys in scripts.calls for key in keys}  # type: ignore[union-attr]
    assert touched == {"2"}
    after = engine_sync.snapshot(1)
    assert (after.available, after.held) == (before.available, before.held)
    assert engine_sync.hold(mine["hold_id"]).status == "active"


async def test_every_key_a_purchase_touches_carries_its_products_hash_tag(
    app_and_client: tuple[Starlette, httpx.AsyncClient], engine_sync: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, http = app_and_client
    engine_sync.set_stock(42, 10)
    scripts = EngineCalls(app, monkeypatch)

    created = await order(http, 42, customer_id="alice")
    raw, headers = signed({"order_id": created["order_id"], "transaction_id": "t-42", "status": "success"})
    assert (await http.post("/api/payments/webhook", content=raw, headers=headers)).status_code == 200
    await http.get(f"/api/orders/{created['order_id']}")
    await http.get("/api/products/42")

    assert scripts.calls
    for script, keys in scripts.calls:
        if script in SALE_SCRIPTS:  # a transaction id's sale-wide claim: one key, tagged by the id itself
            # (and on one Redis the claim store's completeness mark, which the claim only reads)
            marked = [transaction_key("t-42"), CLAIMS_COMPLETE_KEY] if script == "claim_transaction" else []
            assert keys in ([transaction_key("t-42")], marked), f"{script} got {keys!r}"
            continue
        for key in keys:
            match = KEY.match(key)
            assert match is not None, f"{script} got a key outside the layout: {key!r}"
            assert match.group(1) == "42", f"{script} touched another product's key {key!r}"


@given(st.text(max_size=60) | st.from_regex(r"[ho][0-9]{1,16}_[0-9A-Z]{26}", fullmatch=True))
def test_any_string_is_either_refused_or_names_exactly_one_products_keys(value: str) -> None:
    for kind in ("hold", "order"):
        try:
            parsed = parse_id(value, kind)  # type: ignore[arg-type]
        except InvalidId:
            continue
        assert str(parsed) == value, "an id that parses is exactly its canonical form"
        keys = product_keys(parsed.product_id).all()
        assert all(KEY.match(key) and KEY.match(key).group(1) == str(parsed.product_id) for key in keys)  # type: ignore[union-attr]
        assert len(set(keys)) == len(keys) == 16


@given(st.text(max_size=70) | st.from_regex(r"[qa][0-9]{1,16}_[0-9]{1,16}_[0-9a-f]{16}", fullmatch=True))
def test_any_string_is_either_refused_or_is_exactly_one_ticket_of_one_product(value: str) -> None:
    for kind in ("ticket", "admission"):
        try:
            parsed = parse_ticket(value, kind)  # type: ignore[arg-type]
        except InvalidId:
            continue
        assert str(parsed) == value, "a ticket that parses is exactly its canonical form"
        assert 1 <= parsed.number < 10**15
        assert len(parsed.secret) == 8
        keys = product_keys(parsed.product_id).all()
        assert all(KEY.match(key) and KEY.match(key).group(1) == str(parsed.product_id) for key in keys)  # type: ignore[union-attr]


# A lone surrogate is valid JSON ("\ud800"): orjson refuses it, Python's parser accepts it, UTF-8 cannot encode it.
SURROGATE = b'"\\ud800"'


def _raw(template: bytes) -> bytes:
    return template.replace(b"SURROGATE", SURROGATE)


UNENCODABLE_BODIES: list[tuple[str, str, bytes, dict[str, str], str]] = [
    ("POST", "/api/holds", b'{"product_id": 1, "quantity": 1, "customer_id": SURROGATE}', {}, "customer_id"),
    ("POST", "/api/holds", b'{"product_id": 1, "quantity": 1, SURROGATE: 1}', {}, "\\ud800"),
    ("POST", "/api/orders", b'{"hold_id": SURROGATE}', {}, "hold_id"),
    ("PUT", "/api/admin/products/9", b'{"name": SURROGATE, "price_cents": 100, "stock": 5}', ADMIN, "name"),
    ("PUT", "/api/admin/products/9", b'{"name": "n", "price_cents": 1, "stock": 5, SURROGATE: 1}', ADMIN, "\\ud800"),
]


@pytest.mark.parametrize(("method", "path", "template", "headers", "field"), UNENCODABLE_BODIES)
async def test_text_utf8_cannot_encode_is_422_before_any_engine_call(
    app_and_client: tuple[Starlette, httpx.AsyncClient],
    engine_sync: Engine,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    path: str,
    template: bytes,
    headers: dict[str, str],
    field: str,
) -> None:
    app, http = app_and_client
    engine_sync.set_stock(1, 10)
    scripts = EngineCalls(app, monkeypatch)

    response = await http.request(
        method, path, content=_raw(template), headers={**headers, "Content-Type": "application/json"}
    )

    problem = assert_problem(response, 422, "validation_error")
    assert [e["field"] for e in problem["errors"]] == [field]
    assert scripts.calls == []
    assert engine_sync.snapshot(1).held == 0
    assert (await http.get("/api/products/9")).status_code == 404


@pytest.mark.parametrize(
    "template",
    [
        b'{"order_id": "ORDER", "transaction_id": SURROGATE, "status": "success"}',
        b'{"order_id": "ORDER", "transaction_id": "t-1", "status": "success", "provider": {"note": SURROGATE}}',
    ],
    ids=["transaction_id", "a provider's own field"],
)
async def test_a_signed_webhook_with_text_utf8_cannot_encode_is_422_and_changes_nothing(
    app_and_client: tuple[Starlette, httpx.AsyncClient],
    engine_sync: Engine,
    monkeypatch: pytest.MonkeyPatch,
    template: bytes,
) -> None:
    app, http = app_and_client
    engine_sync.set_stock(1, 10)
    created = await order(http, 1)
    scripts = EngineCalls(app, monkeypatch)
    raw, headers = signed(_raw(template).replace(b"ORDER", created["order_id"].encode()))

    response = await http.post("/api/payments/webhook", content=raw, headers=headers)

    assert_problem(response, 422, "validation_error")
    assert scripts.calls == []
    assert engine_sync.order(created["order_id"]).status == "pending"


async def test_an_unencodable_hold_fails_alone_beside_concurrent_valid_holds(
    app_and_client: tuple[Starlette, httpx.AsyncClient], engine_sync: Engine
) -> None:
    _, http = app_and_client
    engine_sync.set_stock(1, 10)
    engine_sync.set_stock(2, 10)
    poisoned = _raw(b'{"product_id": 1, "quantity": 1, "customer_id": SURROGATE}')
    json_headers = {"Content-Type": "application/json"}

    # Sent together, the valid holds on product 1 share a coalesced batch, and product 2's a round trip.
    answers = await asyncio.gather(
        *(http.post("/api/holds", json={"product_id": 1, "quantity": 1, "customer_id": f"c{i}"}) for i in range(5)),
        http.post("/api/holds", content=poisoned, headers=json_headers),
        http.post("/api/holds", json={"product_id": 2, "quantity": 1}),
    )

    assert [a.status_code for a in answers] == [201] * 5 + [422, 201]
    assert_problem(answers[5], 422, "validation_error")
    assert (engine_sync.snapshot(1).held, engine_sync.snapshot(2).held) == (5, 1)
