"""100,000 waiters on one product, on real Redis: what a waiting ticket costs Redis, and that the room still answers
in order. Joins go in pipelined batches of script calls, so the test stays a few seconds long."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from engine import Engine, calls
from engine.keys import product_keys
from engine.types import Ticket, WaitingRoomSettings

P = 11
WAITERS = 100_000
STOCK = 100
MAX_BYTES_PER_TICKET = 150


def join_many(engine: Engine, client: redis.Redis, n: int, chunk: int = 2000) -> list[Ticket]:
    """``n`` joins, ``chunk`` script calls per round trip; each is the engine's own ``queue_join`` call."""
    script = engine._scripts["queue_join"]
    tickets: list[Ticket] = []
    for start in range(0, n, chunk):
        batch = [calls.queue_join(P) for _ in range(min(chunk, n - start))]
        pipe: Any = client.pipeline(transaction=False)
        for call in batch:
            script(keys=call.keys, args=call.args, client=pipe)
        tickets += [c.decode(r) for c, r in zip(batch, pipe.execute(), strict=True)]
    return sorted(tickets, key=lambda t: t.number)


def room_bytes(client: redis.Redis) -> int:
    keys = product_keys(P)
    room = (keys.queue, keys.queue_wait, keys.queue_adm, keys.queue_tab, keys.queue_subs)
    return sum(int(client.memory_usage(key, samples=0) or 0) for key in room)


@pytest.mark.slow
def test_a_hundred_thousand_waiters_cost_under_150_bytes_each_and_keep_their_order(real_redis: redis.Redis) -> None:
    engine = Engine(real_redis)
    engine.set_stock(P, 0, waiting_room=WaitingRoomSettings())
    join_many(engine, real_redis, 1)  # the room's keys exist; measure from here
    before = room_bytes(real_redis)

    tickets = join_many(engine, real_redis, WAITERS)

    per_ticket = (room_bytes(real_redis) - before) / WAITERS
    assert per_ticket <= MAX_BYTES_PER_TICKET, f"{per_ticket:.1f} bytes a waiting ticket"
    assert [t.number for t in tickets[:3]] == [2, 3, 4]
    assert engine.queue_poll(tickets[-1].ticket).position == WAITERS + 1  # ticket 1 waits too
    engine.set_stock(P, STOCK, waiting_room=WaitingRoomSettings())

    first, last = engine.queue_poll(tickets[0].ticket), engine.queue_poll(tickets[-1].ticket)

    assert (first.state, last.state, last.position) == ("admitted", "waiting", WAITERS + 1 - STOCK)
    info = engine.queue_info(P)
    assert (info.admitted, info.waiting) == (STOCK, WAITERS + 1 - STOCK)
