"""The asyncio engine: the same calls as ``Engine``, awaited, over ``redis.asyncio`` clients."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar, cast

from redis import exceptions as redis_errors
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from engine import calls
from engine.client_base import EngineBase
from engine.coalesce import MAX_BATCH, Coalescer
from engine.exceptions import UNAVAILABLE, EngineError, EngineUnavailable, reply_error
from engine.keys import CLAIMS_COMPLETE_KEY, PRODUCTS_KEY, product_keys, product_slot, transaction_key
from engine.pipelining import MAX_CALLS, Pipeliner
from engine.plain_replies import decode_entries, decode_product_ids, decode_stats
from engine.replication import AsyncAcknowledger, waits
from engine.types import (
    Cancellation,
    CancelReason,
    ClaimMode,
    Hold,
    Order,
    OrderStatus,
    OutboxEvent,
    OutboxMark,
    PaymentProcessing,
    PaymentResult,
    ProductReserve,
    ReapResult,
    ReserveRequest,
    RestoredOrder,
    RestoredPayment,
    Settlement,
    Snapshot,
    StockChange,
    Ticket,
    TicketState,
    TransactionClaim,
    WaitingRoom,
    WaitingRoomSettings,
)

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


class AsyncEngine(EngineBase):
    """Concurrent reserves of a product share one script call of up to ``coalesce`` reserves (engine.coalesce).

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
        self._encode = redis.get_encoder().encode
        self._acker = AsyncAcknowledger(redis, self.ack) if self.ack is not None else None
        # Waiting for the replicas takes a round trip of the primary's to them: a second batch (or round trip)
        # goes meanwhile, so that the wait overlaps the next scripts instead of adding to them.
        in_flight = ACKED_IN_FLIGHT if self._acker is not None else 1
        # Reserves of every product share a batch: on one Redis all go in one queue, on a cluster one queue per
        # hash slot (a script call reaches one slot); today's concurrent calls carry the slots' batches side by side.
        self._cluster = isinstance(redis, AsyncRedisCluster)
        self._coalescer: Coalescer[calls.PreparedReserve, Hold] | None = (
            Coalescer(self._reserve_batch, max_batch=coalesce, max_in_flight=in_flight, check=self._packable)
            if coalesce > 1
            else None
        )
        self._pipeliner = (
            Pipeliner(redis, max_calls=pipeline, timeout=timeout, acker=self._acker, max_trips=in_flight)
            if pipeline > 1 and not isinstance(redis, AsyncRedisCluster)
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
        try:
            if when is not None and when <= loop.time():
                work.close()
                raise TimeoutError
            async with asyncio.timeout_at(when):
                return await work
        except TimeoutError as error:  # the deadline's (builtin), not redis-py's own TimeoutError
            within = f" within {self.timeout:g} s" if self.timeout is not None else " by its deadline"
            raise EngineUnavailable(f"Redis did not answer{within}") from error
        except UNAVAILABLE as error:
            raise EngineUnavailable(f"Redis is unavailable: {error}") from error
        except redis_errors.ResponseError as error:
            translated = reply_error(error)
            if translated is None:
                raise
            raise translated from error

    def _packable(self, request: calls.PreparedReserve) -> None:
        """Encode a reserve's arguments as redis-py will: one that cannot be sent fails alone, not its batch."""
        for value in request.batch_args():
            self._encode(value)

    async def _run(self, call: calls.Call[T]) -> T:
        script = self._scripts[call.script]
        acked = self._acker is not None and waits(call.script)
        if self._pipeliner is not None:
            reply = await self._bounded(self._pipeliner.call(script, call.keys, call.args, acked=acked))
        elif acked:
            reply = await self._bounded(self._acked(script, call))
        else:
            reply = await self._bounded(script(keys=call.keys, args=call.args))
        return call.decode(reply)

    async def _acked(self, script: Any, call: calls.Call[Any]) -> Any:
        assert self._acker is not None
        (reply,) = await self._acker.scripts([(script, call.keys, call.args, True)])
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def _add_product(self, product_id: int) -> None:
        if self._acker is not None:
            await self._bounded(self._acker.command(PRODUCTS_KEY, "SADD", PRODUCTS_KEY, product_id))
        else:
            await self._bounded(self.redis.sadd(PRODUCTS_KEY, product_id))

    async def _reserve_batch(self, _: int, requests: Sequence[calls.PreparedReserve]) -> list[Hold | EngineError]:
        return await self._run(calls.reserve_batch(requests, self.hold_ttl_ms))

    async def set_stock(
        self,
        product_id: int,
        total: int,
        *,
        price_cents: int = 0,
        max_per_customer: int = 0,
        starts_at_ms: int | None = None,
        ends_at_ms: int | None = None,
        waiting_room: WaitingRoomSettings | None = None,
    ) -> StockChange:
        change = await self._run(
            calls.set_stock(
                product_id,
                total,
                price_cents=price_cents,
                max_per_customer=max_per_customer,
                starts_at_ms=starts_at_ms,
                ends_at_ms=ends_at_ms,
                waiting_room=waiting_room,
            )
        )
        await self._add_product(product_id)
        return change

    async def reserve(
        self,
        product_id: int,
        quantity: int,
        *,
        customer_id: str | None = None,
        hold_id: str | None = None,
        idempotency_key: str | None = None,
        admission: str | None = None,
    ) -> Hold:
        if self._coalescer is None:
            return await self._run(
                calls.reserve(
                    product_id,
                    quantity,
                    self.hold_ttl_ms,
                    customer_id=customer_id,
                    hold_id=hold_id,
                    idempotency_key=idempotency_key,
                    admission=admission,
                )
            )
        request = calls.reserve_request(
            product_id,
            quantity,
            customer_id=customer_id,
            hold_id=hold_id,
            idempotency_key=idempotency_key,
            admission=admission,
        )
        queue = product_slot(product_id) if self._cluster else 0
        return await self._bounded(self._coalescer.submit(queue, request))

    async def reserve_many(self, product_id: int, requests: Sequence[ReserveRequest]) -> list[Hold | EngineError]:
        """Several reserves of one product in one script call: each a Hold, or the error it met, in order."""
        return await self._reserve_batch(0, calls.prepare(product_id, requests))

    async def reserve_across(self, requests: Sequence[ProductReserve]) -> list[Hold | EngineError]:
        """Reserves of several products: one script call on one Redis, one per hash slot on a cluster (sent
        concurrently). Each answer is a Hold, or the error it met, in the order of ``requests``."""
        prepared = calls.prepare_across(requests)
        groups = calls.by_slot(prepared) if self._cluster else [list(range(len(prepared)))]
        answers = await asyncio.gather(*(self._reserve_batch(0, [prepared[i] for i in group]) for group in groups))
        results: list[Hold | EngineError | None] = [None] * len(prepared)
        for group, answered in zip(groups, answers, strict=True):
            for i, result in zip(group, answered, strict=True):
                results[i] = result
        return cast(list[Hold | EngineError], results)

    async def release(self, hold_id: str, *, owner: str | None = None) -> Hold:
        """``owner``: the verified buyer asking; another's hold is HoldNotFound and stays as it is."""
        return await self._run(calls.release(hold_id, owner))

    async def hold(self, hold_id: str, *, owner: str | None = None) -> Hold:
        return await self._run(calls.hold_status(hold_id, owner))

    async def convert(self, hold_id: str, *, order_id: str | None = None, owner: str | None = None) -> Order:
        return await self._run(calls.convert(hold_id, self.order_ttl_ms, order_id, owner))

    async def settle(self, order_id: str, transaction_id: str, result: PaymentResult, payload: str = "") -> Settlement:
        return await self._run(calls.settle(order_id, transaction_id, result, payload))

    async def processing(self, order_id: str, transaction_id: str, grace_ms: int) -> PaymentProcessing:
        """A payment under way: a pending order's expiry moves, once, to ``grace_ms`` from now."""
        return await self._run(calls.processing(order_id, transaction_id, grace_ms))

    async def claim_transaction(
        self, transaction_id: str, order_id: str, mode: ClaimMode = "claim"
    ) -> TransactionClaim:
        """Bind a transaction id to one order for the whole sale; TransactionReused if another order holds it."""
        return await self._run(calls.claim_transaction(transaction_id, order_id, mode, marked=not self._cluster))

    async def vouch_claims(self, recorded: Sequence[str]) -> int | None:
        """Mark the claim store complete if every transaction id PostgreSQL records (``recorded``, all of them) is
        claimed here and Redis never evicts keys; returns the mark's lifetime in ms, or None when it cannot vouch.

        The mark names this server's run id and expires a minute before the first of those claims would: new
        claims outlive it (they keep their ids for ``TRANSACTION_RETENTION_MS``), a restart or failover changes
        the run id, so while the mark counts, a transaction id without a claim is one PostgreSQL does not have.
        A payment reaches PostgreSQL only after its claim was made here, so ids recorded meanwhile are covered."""
        if self._cluster:
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

    async def release_transaction(self, transaction_id: str, order_id: str) -> bool:
        """Give back the order's claim of a transaction id (the order exists nowhere)."""
        return await self._run(calls.release_transaction(transaction_id, order_id))

    async def count_refund(self, product_id: int) -> None:
        """Count a refund found outside the scripts (a payment for an order Redis no longer keeps)."""
        await self._bounded(self.redis.hincrby(product_keys(product_id).product, "n_refund_required", 1))

    async def cancel(
        self, order_id: str, reason: CancelReason = "cancelled", *, owner: str | None = None
    ) -> Cancellation:
        """``owner``: the verified buyer asking; another's order is OrderNotFound and stays as it is."""
        return await self._run(calls.cancel(order_id, reason, owner))

    async def order(self, order_id: str, *, owner: str | None = None) -> Order:
        return await self._run(calls.order_status(order_id, owner))

    async def order_states(self, product_id: int, order_ids: Sequence[str]) -> dict[str, OrderStatus | None]:
        """The stored status of each order (None: unknown to the engine), in calls of at most 1,000; changes nothing."""
        states: dict[str, OrderStatus | None] = {}
        for start in range(0, len(order_ids), calls.MAX_ORDER_STATES):
            chunk = order_ids[start : start + calls.MAX_ORDER_STATES]
            found: dict[str, OrderStatus | None] = await self._run(calls.order_states(product_id, chunk))
            states.update(found)
        return states

    async def reap(self, product_id: int, batch: int = calls.REAP_BATCH) -> ReapResult:
        return await self._run(calls.reap(product_id, batch))

    async def snapshot(self, product_id: int) -> Snapshot:
        return await self._run(calls.snapshot(product_id))

    async def outbox_mark(self, product_id: int) -> OutboxMark:
        """Read before the snapshot a ``restore`` applies; the restore is refused if the outbox moved since."""
        return await self._run(calls.outbox_mark(product_id))

    async def restore(
        self,
        product_id: int,
        *,
        mark: OutboxMark,
        total: int,
        price_cents: int,
        max_per_customer: int,
        starts_at_ms: int | None,
        ends_at_ms: int | None,
        sold: int,
        orders: Sequence[RestoredOrder] = (),
        payments: Sequence[RestoredPayment] = (),
        customers: dict[str, int] | None = None,
    ) -> StockChange:
        change = await self._run(
            calls.restore(
                product_id,
                mark=mark,
                total=total,
                price_cents=price_cents,
                max_per_customer=max_per_customer,
                starts_at_ms=starts_at_ms,
                ends_at_ms=ends_at_ms,
                sold=sold,
                orders=orders,
                payments=payments,
                customers=customers or {},
            )
        )
        await self._add_product(product_id)
        return change

    async def product_ids(self) -> list[int]:
        return decode_product_ids(await self._bounded(self.redis.smembers(PRODUCTS_KEY)))

    async def read_outbox(self, product_id: int, count: int = 1000) -> list[OutboxEvent]:
        """The oldest ``count`` events; with ``ack``, only once the replicas have them (see ``Engine.read_outbox``)."""
        key = product_keys(product_id).outbox
        if self._acker is not None:
            reply = await self._bounded(self._acker.command(key, "XRANGE", key, "-", "+", "COUNT", count))
        else:
            reply = await self._bounded(self.redis.xrange(key, count=count))
        return decode_entries(product_id, reply)

    async def ack_outbox(self, product_id: int, entry_ids: Sequence[str]) -> int:
        if not entry_ids:
            return 0
        return int(await self._bounded(self.redis.xdel(product_keys(product_id).outbox, *entry_ids)))

    async def outbox_backlog(self, product_id: int) -> int:
        return int(await self._bounded(self.redis.xlen(product_keys(product_id).outbox)))

    async def stats(self, product_id: int) -> dict[str, int]:
        """Running counts kept by the scripts (holds, refusals, expiries, orders, payments, duplicates)."""
        raw = await self._bounded(self.redis.hgetall(product_keys(product_id).product))
        return decode_stats(raw)

    async def queue_join(self, product_id: int, buyer: str | None = None) -> Ticket:
        """Join the product's waiting room (WaitingRoomOff if it has none); ``buyer``: a verified buyer, whose
        second join finds the same ticket."""
        return await self._run(calls.queue_join(product_id, buyer))

    async def queue_poll(self, ticket: str, owner: str | None = None) -> Ticket:
        """Where the ticket stands; polling keeps it in the room and admits the next waiters. ``owner``: the
        verified buyer asking (another buyer's ticket is TicketNotFound)."""
        return await self._run(calls.queue_poll(ticket, owner))

    async def queue_leave(self, ticket: str, owner: str | None = None) -> TicketState:
        return await self._run(calls.queue_leave(ticket, owner))

    async def queue_info(self, product_id: int) -> WaitingRoom:
        return await self._run(calls.queue_info(product_id))
