"""GET /api/admin/stats and GET /api/admin/stream: the dashboard's figures, behind the admin token."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
import sqlalchemy as sa

from api import feed
from api.app import create_app
from api.routes import dashboard
from engine import Engine
from tests.support.api import ADMIN, assert_problem, conformance, hold, make_settings, order, serve, signed
from tests.support.browser import live_server
from tests.support.servers import free_port

pytestmark = pytest.mark.anyio


async def _put(client: httpx.AsyncClient, product_id: int, stock: int, name: str = "Sneaker") -> None:
    body = {"name": name, "price_cents": 1000, "stock": stock}
    response = await client.put(f"/api/admin/products/{product_id}", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text


async def _stats(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/api/admin/stats", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return response.json()  # type: ignore[no-any-return]


async def test_stats_refuse_a_missing_or_wrong_token(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/admin/stats"), 401, "unauthorized")
    wrong = {"Authorization": "Bearer not-the-admin-token"}
    assert_problem(await client.get("/api/admin/stats", headers=wrong), 401, "unauthorized")
    assert_problem(await client.get("/api/admin/stream", headers=wrong), 401, "unauthorized")


async def test_stats_answer_403_when_the_server_has_no_admin_token(
    redis_url: str, database_url: str, tmp_path: Path, real_redis: redis.Redis, db: sa.Engine
) -> None:
    settings = make_settings(redis_url, database_url, tmp_path, FLASHSALE_ADMIN_TOKEN="")
    async with serve(create_app(settings)) as http:
        assert_problem(await http.get("/api/admin/stats", headers=ADMIN), 403, "admin_disabled")
        assert_problem(await http.get("/api/admin/stream", headers=ADMIN), 403, "admin_disabled")


async def test_stats_show_each_products_split_counts_and_name(client: httpx.AsyncClient) -> None:
    await _put(client, 1, 10, name="Limited sneaker")
    await _put(client, 2, 5, name="Ticket")
    await hold(client, 1, 2)
    await order(client, 1, 1)
    await client.post("/api/holds", json={"product_id": 2, "quantity": 6})  # refused: out of stock

    stats = await _stats(client)

    first, second = stats["products"]
    assert (first["id"], first["name"]) == (1, "Limited sneaker")
    assert {k: first[k] for k in ("total", "available", "held", "pending", "sold")} == {
        "total": 10,
        "available": 7,
        "held": 2,
        "pending": 1,
        "sold": 0,
    }
    assert first["counts"]["holds"] == 2
    assert first["counts"]["orders"] == 1
    assert second["counts"]["out_of_stock"] == 1
    assert set(first["counts"]) == set(feed.COUNTS)
    assert first["outbox_backlog"] == 1  # order_created, not yet drained (no worker here)
    assert stats["outbox_backlog"] == 1


async def test_stats_count_the_refunds_required(client: httpx.AsyncClient) -> None:
    await _put(client, 1, 10)
    created = await order(client, 1)
    for txn in ("pay-1", "pay-2", "pay-2"):  # the second charge, delivered twice: one refund
        raw, headers = signed({"order_id": created["order_id"], "transaction_id": txn, "status": "success"})
        await client.post("/api/payments/webhook", content=raw, headers=headers)

    (product,) = (await _stats(client))["products"]

    assert product["counts"]["refund_required"] == 1
    assert product["counts"]["paid"] == 1


async def test_stats_say_consistent_when_redis_and_the_database_agree(client: httpx.AsyncClient) -> None:
    await _put(client, 1, 10)
    await hold(client, 1, 3)  # holds live in Redis only: nothing for the database to agree with yet

    verdict = (await _stats(client))["reconcile"]

    assert verdict["status"] == "consistent"
    assert verdict["findings"] == []
    assert verdict["checked_at"].endswith("Z")


async def test_stats_say_behind_while_orders_wait_in_the_outbox(client: httpx.AsyncClient) -> None:
    await _put(client, 1, 10)
    await order(client, 1, 2)

    verdict = (await _stats(client))["reconcile"]

    assert verdict["status"] == "behind"
    assert verdict["findings"] == [
        {"product_id": 1, "status": "behind", "remedy": "drain", "backlog": 1, "differences": []}
    ]


async def test_stats_report_a_drift_with_what_differs_and_the_remedy(
    client: httpx.AsyncClient, engine_sync: Engine
) -> None:
    await _put(client, 1, 10)
    engine_sync.set_stock(1, 12)  # behind the catalog's back

    verdict = (await _stats(client))["reconcile"]

    assert verdict["status"] == "drifted"
    [finding] = verdict["findings"]
    assert finding["remedy"] == "put_product"
    assert finding["differences"] == [{"field": "stock", "engine": 12, "durable": 10}]


async def test_stats_show_the_numbers_without_a_verdict_when_the_database_is_down(
    redis_url: str, tmp_path: Path, real_redis: redis.Redis
) -> None:
    Engine(real_redis).set_stock(1, 10)
    dead_database = f"postgresql://postgres@127.0.0.1:{free_port()}/flashsale"
    async with serve(create_app(make_settings(redis_url, dead_database, tmp_path))) as http:
        stats = await _stats(http)
    assert stats["products"][0]["available"] == 10
    assert stats["products"][0]["name"] is None
    assert stats["reconcile"]["status"] == "unknown"
    assert stats["reconcile"]["detail"] == "the database did not answer"


async def test_stats_answer_503_when_the_engine_is_down(database_url: str, tmp_path: Path, db: sa.Engine) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    async with serve(create_app(make_settings(dead_redis, database_url, tmp_path))) as http:
        assert_problem(await http.get("/api/admin/stats", headers=ADMIN), 503, "engine_unavailable")


async def test_readers_at_the_same_moment_share_one_sample(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _put(client, 1, 10)
    samples = 0
    real = feed.engine_figures

    async def counted(engine: Any) -> Any:
        nonlocal samples
        samples += 1
        return await real(engine)

    monkeypatch.setattr(feed, "engine_figures", counted)

    answers = await asyncio.gather(*(client.get("/api/admin/stats", headers=ADMIN) for _ in range(40)))

    assert samples == 1
    assert len({a.content for a in answers}) == 1


async def test_a_new_version_only_when_a_figure_changes(client: httpx.AsyncClient) -> None:
    await _put(client, 1, 10)
    first = await _stats(client)
    await asyncio.sleep(feed.TICK_SECONDS + 0.1)
    same = await _stats(client)
    await hold(client, 1)
    await asyncio.sleep(feed.TICK_SECONDS + 0.1)
    changed = await _stats(client)

    assert same["version"] == first["version"]
    assert same == first
    assert changed["version"] == first["version"] + 1
    assert changed["products"][0]["held"] == 1


# --- the stream, from a real server -----------------------------------------------------------------


def _events(response: httpx.Response) -> Iterator[tuple[str, bytes]]:
    """(event name, data) for each event of a text/event-stream, as it arrives."""
    name, data = "message", b""
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = line[6:].encode()
        elif line == "" and data:
            yield name, data
            name, data = "message", b""


@pytest.fixture
def live(redis_url: str, database_url: str, tmp_path: Path, real_redis: redis.Redis, db: sa.Engine) -> Iterator[str]:
    Engine(real_redis).set_stock(1, 100_000)
    with live_server(make_settings(redis_url, database_url, tmp_path)) as base:
        yield base


def _hold_steadily(base: str, stop: threading.Event) -> None:
    with httpx.Client(base_url=base) as http:
        while not stop.is_set():
            http.post("/api/holds", json={"product_id": 1, "quantity": 1})


def test_the_stream_sends_at_most_two_updates_a_second_however_busy_the_sale(live: str) -> None:
    stop = threading.Event()
    with httpx.stream("GET", f"{live}/api/admin/stream", headers=ADMIN, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _events(response)
        name, data = next(events)
        assert name == "stats"
        assert orjson.loads(data)["products"][0]["held"] == 0

        # Holds pour in (hundreds a second) for three seconds: the stream sends one update per tick at most.
        buyer = threading.Thread(target=_hold_steadily, args=(live, stop))
        buyer.start()
        started = time.monotonic()
        seen = []
        try:
            while time.monotonic() - started < 3:
                name, data = next(events)
                assert name == "stats"
                seen.append(orjson.loads(data))
        finally:
            stop.set()
            buyer.join()
    assert 3 <= len(seen) <= 3 / feed.TICK_SECONDS + 1
    held = [update["products"][0]["held"] for update in seen]
    assert held == sorted(held)
    assert held[-1] > held[0]
    assert [update["version"] for update in seen] == sorted({update["version"] for update in seen})


def test_the_stream_ends_after_its_lifetime_so_the_page_reconnects(live: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashboard, "STREAM_SECONDS", 1.0)
    started = time.monotonic()
    with httpx.stream("GET", f"{live}/api/admin/stream", headers=ADMIN, timeout=10) as response:
        names = [name for name, _ in _events(response)]
    assert time.monotonic() - started < 5
    assert names[0] == "stats"
    assert names[-1] == "reconnect"


def _whole_stream(base: str) -> tuple[str, bytes]:
    with httpx.stream("GET", f"{base}/api/admin/stream", headers=ADMIN, timeout=10) as response:
        assert response.status_code == 200
        return response.headers["content-type"], response.read()


def test_every_event_of_a_stream_is_one_the_document_describes(live: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashboard, "STREAM_SECONDS", 1.5)

    content_type, body = _whole_stream(live)

    conformance().check("GET", "/api/admin/stream", 200, content_type, body)
    assert body.startswith(b"retry: ")
    assert b"event: stats\nid: 0\n" in body
    assert body.endswith(b"event: reconnect\ndata: {}\n\n")


def test_the_events_of_a_stream_without_an_engine_are_ones_the_document_describes(
    database_url: str, tmp_path: Path, db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard, "STREAM_SECONDS", 1.5)
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    with live_server(make_settings(dead_redis, database_url, tmp_path)) as base:
        content_type, body = _whole_stream(base)

    conformance().check("GET", "/api/admin/stream", 200, content_type, body)
    assert b"event: problem\n" in body


def test_the_stream_says_when_the_engine_does_not_answer(database_url: str, tmp_path: Path, db: sa.Engine) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    with (
        live_server(make_settings(dead_redis, database_url, tmp_path)) as base,
        httpx.stream("GET", f"{base}/api/admin/stream", headers=ADMIN, timeout=10) as response,
    ):
        name, data = next(_events(response))
    assert name == "problem"
    assert orjson.loads(data)["code"] == "engine_unavailable"


async def test_stats_and_metrics_show_dead_letters_and_open_refunds(
    client: httpx.AsyncClient, engine_sync: Engine, db: sa.Engine
) -> None:
    from datetime import timedelta

    from persistence.deliveries import dead_letter_overdue
    from workers.drain import MerchantOutbox, drain

    await _put(client, 1, 10)
    created = await order(client, 1)
    for txn in ("pay-1", "pay-2"):  # the second charge: a refund request
        raw, headers = signed({"order_id": created["order_id"], "transaction_id": txn, "status": "success"})
        await client.post("/api/payments/webhook", content=raw, headers=headers)
    drain(engine_sync, db, merchant=MerchantOutbox(timedelta(0)))
    dead_letter_overdue(db, datetime.now(UTC))  # every event past its deadline: dead-lettered

    merchant = (await _stats(client))["merchant"]
    metrics = (await client.get("/metrics")).text

    assert merchant == {"refunds_open": 1, "deliveries": {"pending": 0, "delivered": 0, "failed": 3}}
    assert 'flashsale_merchant_events{status="failed"} 3.0' in metrics
    assert "flashsale_refund_requests_open 1.0" in metrics
