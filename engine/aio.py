"""The asyncio engine: every operation of engine.operations, awaited, over ``redis.asyncio`` clients; concurrent
reserves (and a room's polls and joins) coalesced, concurrent calls pipelined, each under a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar, cast

from engine import calls
from engine.calls import (
    Call,
    PreparedJoin,
    PreparedPoll,
    PreparedReserve,
    queue_join_batch,
    queue_poll_batch,
    reserve_batch,
)
from engine.coalesce import MAX_BATCH, Coalescer
from engine.commands import Command
from engine.exceptions import EngineError, EngineUnavailable, unavailable_as_engine_error
from engine.keys import CLAIMS_COMPLETE_KEY, product_slot, transaction_key
from engine.operations import AsyncOperations, Steps
from engine.pipelining import MAX_CALLS, Pipeliner
from engine.replication import AsyncAcknowledger, waits
from engine.types import Hold, Ticket

T = TypeVar("T")

VOUCH_CHUNK = 1000
"""Claims whose lifetime one pipelined round trip reads, when vouching for the claim store."""
VOUCH_MARGIN_MS = 60_000
"""The mark expires this long before the first claim it vouches for would."""

ACKED_IN_FLIGHT = 2
"""Batches of one product, and pipelined round trips, in flight at once when writes wait for the replicas."""

DEADLINE: ContextVar[float | None] = ContextVar("flashsale_engine_deadline", default=None)
"""The event-loop time (``loop.time()``) by which engine calls made in this context must end, or None.

The API sets it when a request arrives, so that the request's engine calls share one deadline counted from
then, not one each from whenever they start."""


@contextmanager
def deadline(at: float | None) -> Iterator[None]:
    """Engine calls made inside end by ``at`` at the latest; ``None`` lifts a deadline set outside."""
    token = DEADLINE.set(at)
    try:
        yield
    finally:
        DEADLINE.reset(token)


class AsyncEngine(AsyncOperations):
    """Concurrent reserves of a product share one script call of up to ``coalesce`` reserves (engine.coalesce);
    so do concurrent polls, and joins, of one product's waiting room (``queue_poll_batch``, ``queue_join_batch``).

    ``coalesce=1`` sends each reserve alone, as ``reserve.lua``. Concurrent script calls on different
    products share a pipelined round trip of up to ``pipeline`` calls (engine.pipelining), unless
    ``pipeline=1`` or the client is a cluster client (whose pipelines split by node anyway).

    With ``timeout`` (seconds), every call gives up at that deadline with EngineUnavailable, wherever it
    waits: for a pool connection, in the coalescer's or the pipeliner's queue, or for Redis to answer;
    ``DEADLINE`` can bring it earlier (a request's). What it sent may still run later; every id is chosen
    before the call, so a retry replays it.

    With ``ack`` (engine.replication), a write is answered once replicated: one WAIT per coalesced batch or
    pipelined round trip.
    """

    def __init__(
        self,
        redis: Any,
        *,
        coalesce: int = MAX_BATCH,
        pipeline: int = MAX_CALLS,
        timeout: float | None = None,
        **settings: Any,
    ) -> None:
        super().__init__(redis, **settings)
        if timeout is not None and not timeout > 0:
            raise ValueError("timeout must be positive")
        self.timeout = timeout
        encoder = redis.get_encoder()
        self._encode = encoder.encode
        self._encoding: tuple[str, str] = (encoder.encoding, encoder.encoding_errors)
        self._acker = AsyncAcknowledger(redis, self.ack) if self.ack is not None else None
        # Waiting for the replicas takes a round trip of the primary's to them: a second batch (or round trip)
        # goes meanwhile, so that the wait overlaps the next scripts instead of adding to them.
        in_flight = ACKED_IN_FLIGHT if self._acker is not None else 1
        self._coalescer: Coalescer[PreparedReserve, Hold] | None = (
            Coalescer(self._reserve_batch, max_batch=coalesce, max_in_flight=in_flight, check=self._packable)
            if coalesce > 1
            else None
        )
        self._polls: Coalescer[PreparedPoll, Ticket] | None = (
            Coalescer(self._poll_batch, max_batch=coalesce, max_in_flight=in_flight) if coalesce > 1 else None
        )
        self._joins: Coalescer[PreparedJoin, Ticket] | None = (
            Coalescer(self._join_batch, max_batch=coalesce, max_in_flight=in_flight) if coalesce > 1 else None
        )
        self._pipeliner = (
            Pipeliner(redis, max_calls=pipeline, timeout=timeout, acker=self._acker, max_trips=in_flight)
            if pipeline > 1 and not self.cluster
            else None
        )

    async def _bounded(self, work: Coroutine[Any, Any, T]) -> T:
        """``work``'s result; a driver failure, or no answer by the deadline, is EngineUnavailable.

        The deadline is ``timeout`` from now, or the context's ``DEADLINE`` if that comes first. Past it
        already, ``work`` never starts (nothing is sent)."""
        loop = asyncio.get_running_loop()
        when = None if self.timeout is None else loop.time() + self.timeout
        shared = DEADLINE.get()
        if shared is not None and (when is None or shared < when):
            when = shared
        with unavailable_as_engine_error():  # outside: the deadline's TimeoutError (an OSError) is told apart first
            try:
                if when is not None and when <= loop.time():
                    work.close()
                    raise TimeoutError
                async with asyncio.timeout_at(when):
                    return await work
            except TimeoutError as error:  # the deadline's (builtin), not redis-py's own TimeoutError
                within = f" within {self.timeout:g} s" if self.timeout is not None else " by its deadline"
                raise EngineUnavailable(f"Redis did not answer{within}") from error

    def _packable(self, request: PreparedReserve) -> None:
        """Encode a reserve's arguments as redis-py will: one that cannot be sent fails alone, not its batch.

        Only text can fail (a lone surrogate), so text is encoded as redis-py's encoder does, ints and bytes pass
        as they always pack, and anything else goes through the encoder itself (1.9 -> 0.4 µs a reserve)."""
        encoding, errors = self._encoding
        for value in request.batch_args():
            kind = type(value)
            if kind is str:
                value.encode(encoding, errors)  # type: ignore[union-attr]
            elif kind is not int and kind is not bytes:
                self._encode(value)

    async def _run(self, call: Call[T]) -> T:
        if self._pipeliner is not None:
            acked = self._acker is not None and waits(call.script)
            script = self._scripts[call.script]
            reply = await self._bounded(self._pipeliner.call(script, call.keys, call.args, acked=acked))
        else:
            reply = await self._bounded(self._script_reply(call))
        return call.decode(reply)

    async def _command(self, command: Command[T]) -> T:
        return command.decode(await self._bounded(self._command_reply(command)))

    def _reserve(self, request: PreparedReserve) -> Coroutine[Any, Any, Hold]:
        # Not a coroutine function of its own: the hot path awaits one frame fewer.
        if self._coalescer is None:
            return cast("Coroutine[Any, Any, Hold]", super()._reserve(request))
        # Reserves of every product share a batch: on one Redis all go in one queue, on a cluster one queue per
        # hash slot (a script call reaches one slot); concurrent calls carry the slots' batches side by side.
        queue = product_slot(request.product_id) if self.cluster else 0
        return self._bounded(self._coalescer.submit(queue, request))

    async def _reserve_batch(self, _: int, requests: Sequence[PreparedReserve]) -> list[Hold | EngineError]:
        return await self._run(reserve_batch(requests, self.hold_ttl_ms))

    def _poll(self, poll: PreparedPoll) -> Coroutine[Any, Any, Ticket]:
        if self._polls is None:
            return cast("Coroutine[Any, Any, Ticket]", super()._poll(poll))
        # A script call reaches one product's room: a product's concurrent polls share a batch.
        return self._bounded(self._polls.submit(poll.product_id, poll))

    async def _poll_batch(self, product_id: int, polls: Sequence[PreparedPoll]) -> list[Ticket | EngineError]:
        return await self._run(queue_poll_batch(product_id, polls))

    def _join(self, join: PreparedJoin) -> Coroutine[Any, Any, Ticket]:
        if self._joins is None:
            return cast("Coroutine[Any, Any, Ticket]", super()._join(join))
        return self._bounded(self._joins.submit(join.product_id, join))

    async def _join_batch(self, product_id: int, joins: Sequence[PreparedJoin]) -> list[Ticket | EngineError]:
        return await self._run(queue_join_batch(product_id, joins))

    async def _steps(self, steps: Steps[T]) -> T:
        if steps.together:
            return steps.answer(list(await asyncio.gather(*(self._execute(step) for step in steps.steps))))
        return steps.answer([await self._execute(step) for step in steps.steps])

    async def vouch_claims(self, recorded: Sequence[str]) -> int | None:
        """Mark the claim store complete if every transaction id PostgreSQL records (``recorded``, all of them) is
        claimed here and Redis never evicts keys; returns the mark's lifetime in ms, or None when it cannot vouch.

        The mark names this server's run id and expires a minute before the first of those claims would: new
        claims outlive it (they keep their ids for ``TRANSACTION_RETENTION_MS``), a restart or failover changes
        the run id, so while the mark counts, a transaction id without a claim is one PostgreSQL does not have.
        A payment reaches PostgreSQL only after its claim was made here, so ids recorded meanwhile are covered."""
        if self.cluster:
            return None  # the mark would live in one slot, the claims in all of them
        memory = await self._bounded(self.redis.info("memory"))
        if memory.get("maxmemory_policy") != "noeviction":
            return None  # a claim evicted under memory pressure would be an id forgotten unseen
        shortest = calls.TRANSACTION_RETENTION_MS
        for start in range(0, len(recorded), VOUCH_CHUNK):
            pipe = self.redis.pipeline(transaction=False)
            for transaction_id in recorded[start : start + VOUCH_CHUNK]:
                pipe.pttl(transaction_key(transaction_id))
            for left in await self._bounded(pipe.execute()):
                if left == -2:
                    return None  # recorded in PostgreSQL, forgotten here
                if left >= 0:
                    shortest = min(shortest, int(left))
        lifetime = shortest - VOUCH_MARGIN_MS
        if lifetime <= 0:
            return None
        run_id = (await self._bounded(self.redis.info("server")))["run_id"]
        await self._bounded(self.redis.set(CLAIMS_COMPLETE_KEY, run_id, px=lifetime))
        return lifetime
