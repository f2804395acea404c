"""queue_poll_batch and queue_join_batch: polls, or joins, of one waiting room in one script call, and the asyncio
engine's coalescing of them.

Each poll or join in a batch is answered as queue_poll or queue_join would have answered it, made in turn; a
ticket that is not found (forged, another buyer's) fails its own poll only, and a malformed one fails before it
joins a batch.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from engine import AsyncEngine, Engine
from engine.exceptions import InvalidId, WaitingRoomOff
from engine.types import Ticket, WaitingRoomSettings
from tests.test_engine_async import ClientFactory, async_clients, run

REUSED_FIXTURES = (async_clients,)
P = 7


def a_room_on_sale() -> dict[str, Any]:
    """set_stock's arguments for a product whose sale has started, with a waiting room."""
    return {"price_cents": 100, "starts_at_ms": int(time.time() * 1000) - 1000, "waiting_room": WaitingRoomSettings()}


def forged(ticket: str) -> str:
    """The same ticket number with another secret."""
    head, secret = ticket.rsplit("_", 1)
    return f"{head}_{'0' * 16 if secret != '0' * 16 else '1' * 16}"


def seen(ticket: Ticket) -> tuple[Any, ...]:
    return (ticket.ticket, ticket.state, ticket.position, ticket.admission_token, ticket.available)


@pytest.mark.parametrize("redis_client", ["redis", "cluster"], indirect=True)
def test_polls_in_one_call_are_each_answered_as_polled_in_turn(engine: Engine) -> None:
    engine.set_stock(P, 2, **a_room_on_sale())
    a, b, c, d = (engine.queue_join(P).ticket for _ in range(4))
    engine.release(engine.reserve(P, 1, admission=engine.queue_poll(a).admission_token).hold_id)

    batch = engine.queue_poll_many([d, c, b, a])

    assert all(isinstance(t, Ticket) for t in batch)
    assert [seen(t) for t in batch if isinstance(t, Ticket)] == [seen(engine.queue_poll(t)) for t in (d, c, b, a)]
    assert [t.state for t in batch if isinstance(t, Ticket)] == ["waiting", "admitted", "admitted", "used"]


@pytest.mark.parametrize("redis_client", ["redis", "cluster"], indirect=True)
def test_a_ticket_not_found_fails_its_own_poll_in_a_batch(engine: Engine) -> None:
    engine.set_stock(P, 1, **a_room_on_sale())
    mine = engine.queue_join(P, buyer="alice").ticket
    theirs = engine.queue_join(P, buyer="bob").ticket

    batch = engine.queue_poll_many([forged(mine), mine, theirs], owner="alice")

    assert [type(answer).__name__ for answer in batch] == ["TicketNotFound", "Ticket", "TicketNotFound"]
    assert [getattr(answer, "ticket", None) for answer in batch] == [forged(mine), mine, theirs]
    assert [getattr(answer, "state", None) for answer in batch] == [None, "admitted", None]
    with pytest.raises(InvalidId):
        engine.queue_poll_many([mine, "q7_nonsense"])


def test_concurrent_async_polls_of_a_room_share_script_calls_and_each_hears_its_own_answer(
    async_clients: ClientFactory,
) -> None:
    async def scenario(engine: AsyncEngine) -> None:
        await engine.set_stock(P, 3, **a_room_on_sale())
        tickets = [(await engine.queue_join(P)).ticket for _ in range(40)]
        batches: list[int] = []
        polls = engine._polls
        assert polls is not None
        send = polls._send

        async def counted(product_id: int, requests: Any) -> Any:
            batches.append(len(requests))
            return await send(product_id, requests)

        polls._send = counted
        asked = [*tickets, forged(tickets[5]), "q7_nonsense", *tickets]

        async def poll(ticket: str) -> Ticket:
            return await engine.queue_poll(ticket)

        results = await asyncio.gather(*(poll(t) for t in asked), return_exceptions=True)

        answers = [r for r in results if isinstance(r, Ticket)]
        assert [r.ticket for r in answers] == tickets + tickets
        assert [r.state for r in answers[:40]] == ["admitted"] * 3 + ["waiting"] * 37
        assert [r.position for r in answers[3:40]] == list(range(1, 38))
        assert [type(r).__name__ for r in results[40:42]] == ["TicketNotFound", "InvalidId"]
        assert sum(batches) == 81  # the malformed ticket never joined a batch
        assert len(batches) < 81 / 4  # one call carried many polls

    run(async_clients, scenario)


@pytest.mark.parametrize("redis_client", ["redis", "cluster"], indirect=True)
def test_joins_in_one_call_are_each_answered_as_joined_in_turn(engine: Engine) -> None:
    engine.set_stock(P, 1, **a_room_on_sale())

    batch = engine.queue_join_many(P, [None, "alice", "alice", None])

    answers = [t for t in batch if isinstance(t, Ticket)]
    assert len(answers) == 4
    assert [(t.number, t.created, t.state, t.position) for t in answers] == [
        (1, True, "admitted", None),
        (2, True, "waiting", 1),
        (2, False, "waiting", 1),  # alice's second join finds her ticket
        (3, True, "waiting", 2),
    ]
    assert engine.queue_info(P).joined_total == 3


@pytest.mark.parametrize("redis_client", ["redis", "cluster"], indirect=True)
def test_every_join_of_a_batch_hears_why_the_room_refuses_it(engine: Engine) -> None:
    engine.set_stock(P, 1)

    batch = engine.queue_join_many(P, [None, "bob"])

    assert [type(answer) for answer in batch] == [WaitingRoomOff, WaitingRoomOff]


def test_concurrent_async_joins_of_a_room_share_script_calls_and_each_gets_its_own_ticket(
    async_clients: ClientFactory,
) -> None:
    async def scenario(engine: AsyncEngine) -> None:
        await engine.set_stock(P, 3, **a_room_on_sale())
        joins = engine._joins
        assert joins is not None
        batches: list[int] = []
        send = joins._send

        async def counted(product_id: int, requests: Any) -> Any:
            batches.append(len(requests))
            return await send(product_id, requests)

        joins._send = counted

        tickets = await asyncio.gather(*(engine.queue_join(P) for _ in range(60)))

        assert sorted(t.number for t in tickets) == list(range(1, 61))
        assert sorted(t.state for t in tickets) == ["admitted"] * 3 + ["waiting"] * 57
        assert sum(batches) == 60
        assert len(batches) < 60 / 4  # one call carried many joins

    run(async_clients, scenario)
