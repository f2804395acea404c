"""The waiting room over HTTP (docs/waiting-room.md), against real Redis and PostgreSQL: opting in, join, poll,
leave, the admission a hold needs, the published draw, and fairness with thousands of buyers."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa

from api.app import create_app
from engine import Engine
from engine.types import WaitingRoomSettings
from tests.support.api import ADMIN, assert_problem, make_settings, serve
from tests.support.buyers import JWT_ENV, bearer
from tests.support.draw import draw_order

pytestmark = pytest.mark.anyio

P = 5


def _at(offset: timedelta) -> str:
    return (datetime.now(UTC) + offset).replace(microsecond=0).isoformat().replace("+00:00", "Z")


async def put_room(client: httpx.AsyncClient, stock: int, *, started: bool = True, **room: Any) -> dict[str, Any]:
    spec = {
        "name": "Drop",
        "price_cents": 100,
        "stock": stock,
        "sale_starts_at": _at(timedelta(seconds=-5 if started else 600)),
        "waiting_room": True,
        **room,
    }
    response = await client.put(f"/api/admin/products/{P}", json=spec, headers=ADMIN)
    assert response.status_code in (200, 201), response.text
    return response.json()  # type: ignore[no-any-return]


async def join(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post(f"/api/products/{P}/queue")
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def poll(client: httpx.AsyncClient, ticket: str) -> dict[str, Any]:
    response = await client.get(f"/api/queue/{ticket}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def hold_with(client: httpx.AsyncClient, admission: str | None) -> httpx.Response:
    headers = {"X-Flashsale-Admission": admission} if admission else {}
    return await client.post("/api/holds", json={"product_id": P, "quantity": 1}, headers=headers)


async def test_a_product_opts_in_and_publishes_the_seed_sha256_at_once(client: httpx.AsyncClient) -> None:
    product = await put_room(client, 10, started=False, admit_per_second=5, admission_ttl_seconds=30)

    assert (product["waiting_room"], product["admit_per_second"], product["admission_ttl_seconds"]) == (True, 5, 30)
    room = (await client.get(f"/api/products/{P}/queue")).json()
    assert len(room["seed_sha256"]) == 64
    assert room["seed"] is None
    assert room["opened_at"] is not None
    assert_problem(await client.get(f"/api/products/{P}/queue/draw"), 409, "draw_not_revealed")
    assert (await client.get(f"/api/products/{P}")).json()["waiting_room"] is True


async def test_join_poll_and_leave(client: httpx.AsyncClient) -> None:
    await put_room(client, 0)

    joined = await join(client)
    polled = await client.get(f"/api/queue/{joined['ticket']}")
    left = await client.delete(f"/api/queue/{joined['ticket']}")

    assert (joined["state"], joined["position"], joined["ahead"]) == ("sold_out", 1, 0)
    assert polled.status_code == 200
    assert 1 <= int(polled.headers["Retry-After"]) <= 20
    assert left.status_code == 204
    after = await client.get(f"/api/queue/{joined['ticket']}")
    assert after.json()["state"] == "left"
    assert "retry-after" not in after.headers


async def test_a_hold_needs_the_admission_its_ticket_was_given_and_uses_it_up(client: httpx.AsyncClient) -> None:
    await put_room(client, 2)
    first, second, third = await join(client), await join(client), await join(client)
    assert [t["state"] for t in (first, second, third)] == ["admitted", "admitted", "waiting"]
    assert first["admission_expires_at"] is not None
    assert first["estimated_wait_seconds"] == 0

    missing = await hold_with(client, None)
    held = await hold_with(client, first["admission_token"])
    again = await hold_with(client, first["admission_token"])

    assert assert_problem(missing, 403, "admission_required")["reason"] == "missing"
    assert held.status_code == 201
    assert assert_problem(again, 403, "admission_required")["reason"] == "used"
    assert (await poll(client, first["ticket"]))["state"] == "used"
    assert (await poll(client, third["ticket"]))["state"] == "waiting"  # one unit left, one admission holds it


async def test_bad_tickets_and_admissions_are_4xx_and_change_nothing(
    client: httpx.AsyncClient, engine_sync: Engine
) -> None:
    await put_room(client, 1)
    admitted = await join(client)

    assert_problem(await client.get("/api/queue/not-a-ticket"), 422, "validation_error")
    assert_problem(await client.delete("/api/queue/q5_1_zz"), 422, "validation_error")
    assert_problem(await client.get("/api/queue/q5_99_0123456789abcdef"), 404, "ticket_not_found")
    assert_problem(await hold_with(client, "a5_1_nothex"), 422, "validation_error")
    other_product = admitted["admission_token"].replace("a5_", "a6_", 1)
    assert assert_problem(await hold_with(client, other_product), 403, "admission_required")["reason"] == "invalid"
    assert_problem(await client.post("/api/products/99/queue"), 404, "product_not_found")
    bad = {"name": "Drop", "price_cents": 1, "stock": 1, "waiting_room": "yes", "admit_per_second": 0}
    refused = await client.put(f"/api/admin/products/{P}", json={**bad, "admission_ttl_seconds": 0}, headers=ADMIN)
    fields = {e["field"] for e in assert_problem(refused, 422, "validation_error")["errors"]}
    assert fields == {"waiting_room", "admit_per_second", "admission_ttl_seconds"}
    assert engine_sync.snapshot(P).held == 0
    assert (await poll(client, admitted["ticket"]))["state"] == "admitted"


async def test_a_product_without_a_room_refuses_joins(client: httpx.AsyncClient) -> None:
    await client.put(f"/api/admin/products/{P}", json={"name": "Plain", "price_cents": 1, "stock": 3}, headers=ADMIN)

    assert_problem(await client.post(f"/api/products/{P}/queue"), 409, "waiting_room_off")
    assert_problem(await client.get(f"/api/products/{P}/queue"), 409, "waiting_room_off")
    assert (await hold_with(client, None)).status_code == 201


@pytest.fixture
async def jwt_client(
    redis_url: str, database_url: str, tmp_path: Path, real_redis: redis.Redis, db: sa.Engine
) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(create_app(make_settings(redis_url, database_url, tmp_path, **JWT_ENV))) as http:
        yield http


async def test_with_buyer_tokens_200_concurrent_joins_by_one_buyer_give_one_ticket_only_they_can_use(
    jwt_client: httpx.AsyncClient, engine_sync: Engine
) -> None:
    alice, bob = bearer("alice"), bearer("bob")
    engine_sync.set_stock(P, 1, price_cents=100, waiting_room=WaitingRoomSettings())

    answers = await asyncio.gather(*(jwt_client.post(f"/api/products/{P}/queue", headers=alice) for _ in range(200)))

    assert sorted(a.status_code for a in answers) == [200] * 199 + [201]
    assert len({a.json()["ticket"] for a in answers}) == 1
    ticket = answers[0].json()
    assert ticket["state"] == "admitted"
    assert_problem(await jwt_client.post(f"/api/products/{P}/queue"), 401, "invalid_buyer_token")
    assert_problem(await jwt_client.get(f"/api/queue/{ticket['ticket']}", headers=bob), 404, "ticket_not_found")
    assert_problem(await jwt_client.delete(f"/api/queue/{ticket['ticket']}", headers=bob), 404, "ticket_not_found")
    hold = {"product_id": P, "quantity": 1}
    stolen = await jwt_client.post(
        "/api/holds", json=hold, headers={**bob, "X-Flashsale-Admission": ticket["admission_token"]}
    )
    assert assert_problem(stolen, 403, "admission_required")["reason"] == "invalid"
    own = await jwt_client.post(
        "/api/holds", json=hold, headers={**alice, "X-Flashsale-Admission": ticket["admission_token"]}
    )
    assert own.status_code == 201, own.text
    polled = await jwt_client.get(f"/api/queue/{ticket['ticket']}", headers=alice)
    assert polled.json()["state"] == "used"
    assert (await jwt_client.post(f"/api/products/{P}/queue", headers=alice)).json()["ticket"] == ticket["ticket"]


async def test_metrics_and_the_dashboard_show_each_waiting_room(client: httpx.AsyncClient) -> None:
    await put_room(client, 1)
    first, _, third = await join(client), await join(client), await join(client)
    assert (await hold_with(client, first["admission_token"])).status_code == 201
    await client.delete(f"/api/queue/{third['ticket']}")

    metrics = (await client.get("/metrics")).text
    stats = (await client.get("/api/admin/stats", headers=ADMIN)).json()

    assert f'flashsale_queue_waiting{{product_id="{P}"}} 1.0' in metrics
    assert f'flashsale_queue_admitted{{product_id="{P}"}} 0.0' in metrics
    assert f'flashsale_queue_tickets_total{{product_id="{P}",state="used"}} 1.0' in metrics
    assert f'flashsale_queue_tickets_total{{product_id="{P}",state="left"}} 1.0' in metrics
    [product] = stats["products"]
    queue = product["queue"]
    assert (queue["waiting"], queue["admitted"], queue["used"], queue["left"]) == (1, 0, 1, 1)
    assert queue["admissions_per_second"] > 0


@pytest.mark.slow
async def test_fairness_with_2000_buyers_before_the_start_and_3000_after(
    client: httpx.AsyncClient, engine_sync: Engine
) -> None:
    """Admissions follow the verifier's pre-queue order, then join order; they number exactly the stock plus
    what lapsed back; nobody without an admission gets a hold."""
    stock, returned = 2100, 40
    rng = random.Random(15)
    await put_room(client, stock, started=False)
    clients = asyncio.Semaphore(50)  # buyers at once: a burst, not all 5,000 queued on one in-process app

    async def late_join() -> dict[str, Any]:
        async with clients:
            await asyncio.sleep(rng.random() / 100)  # random delays: the join order is the order Redis ran them
            return await join(client)

    async def bounded_poll(ticket: str) -> dict[str, Any]:
        async with clients:
            return await poll(client, ticket)

    async def bounded_hold(admission: str) -> httpx.Response:
        async with clients:
            return await hold_with(client, admission)

    early = await asyncio.gather(*(late_join() for _ in range(2000)))
    assert all(t["position"] is None for t in early)
    await put_room(client, stock)  # the sale starts now; the room keeps its tickets
    late = await asyncio.gather(*(late_join() for _ in range(3000)))
    tickets = {t["number"]: t["ticket"] for t in [*early, *late]}

    draw = (await client.get(f"/api/products/{P}/queue/draw")).json()
    expected = draw_order(draw["seed"], draw["seed_sha256"], draw["tickets"]) + sorted(t["number"] for t in late)
    assert sorted(draw["tickets"]) == sorted(t["number"] for t in early)

    async def poll_all() -> dict[int, dict[str, Any]]:
        polled = await asyncio.gather(*(bounded_poll(tickets[n]) for n in expected))
        return {p["number"]: p for p in polled}

    states = await poll_all()
    admitted = [n for n in expected if states[n]["state"] == "admitted"]
    assert admitted == expected[:stock]
    assert [states[n]["position"] for n in expected[stock : stock + 3]] == [1, 2, 3]

    for number in rng.sample(expected[stock:], 20):  # a waiter with no admission, or someone else's
        assert (await hold_with(client, None)).status_code == 403
        assert (await hold_with(client, states[number]["admission_token"])).status_code == 403
    holds = await asyncio.gather(*(bounded_hold(states[n]["admission_token"]) for n in admitted))
    assert all(h.status_code == 201 for h in holds)
    for released in holds[:returned]:
        assert (await client.delete(f"/api/holds/{released.json()['hold_id']}")).status_code == 204

    states = await poll_all()
    readmitted = [n for n in expected if states[n]["state"] == "admitted"]
    assert readmitted == expected[stock : stock + returned]
    info = engine_sync.queue_info(P)
    assert info.admitted_total == stock + returned
    assert engine_sync.snapshot(P).held == stock - returned
    assert engine_sync.stats(P)["holds"] == stock
