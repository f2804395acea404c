"""The asyncio engine: the same calls as ``Engine``, awaited, over ``redis.asyncio`` clients."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from engine import calls
from engine.base import EngineBase, prepare, unavailable_as_engine_error
from engine.coalesce import MAX_BATCH, Coalescer
from engine.exceptions import EngineError
from engine.ids import PRODUCTS_KEY, product_keys
from engine.outbox import decode_entries, decode_product_ids, decode_stats
from engine.pipelining import MAX_CALLS, Pipeliner
from engine.types import (
    Cancellation,
    CancelReason,
    Hold,
    Order,
    OutboxEvent,
    OutboxMark,
    PaymentResult,
    ReapResult,
    ReserveRequest,
    RestoredOrder,
    RestoredPayment,
    Settlement,
    Snapshot,
    StockChange,
)

T = TypeVar("T")


class AsyncEngine(EngineBase):
    """Concurrent reserves of a product share one script call of up to ``coalesce`` reserves (engine.coalesce).

    ``coalesce=1`` sends each reserve alone, as ``reserve.lua``. Concurrent script calls on different
    products share a pipelined round trip of up to ``pipeline`` calls (engine.pipelining), unless
    ``pipeline=1`` or the client is a cluster client (whose pipelines split by node anyway).
    """

    def __init__(self, redis: Any, *, coalesce: int = MAX_BATCH, pipeline: int = MAX_CALLS, **settings: int) -> None:
        super().__init__(redis, **settings)
        self._encode = redis.get_encoder().encode
        self._coalescer: Coalescer[calls.PreparedReserve, Hold] | None = (
            Coalescer(self._reserve_batch, max_batch=coalesce, check=self._packable) if coalesce > 1 else None
        )
        self._pipeliner = (
            Pipeliner(redis, max_calls=pipeline) if pipeline > 1 and not isinstance(redis, AsyncRedisCluster) else None
        )

    def _packable(self, request: calls.PreparedReserve) -> None:
        """Encode a reserve's arguments as redis-py will: one that cannot be sent fails alone, not its batch."""
        for value in request.batch_args():
            self._encode(value)

    async def _run(self, call: calls.Call[T]) -> T:
        script = self._scripts[call.script]
        with unavailable_as_engine_error():
            if self._pipeliner is None:
                reply = await script(keys=call.keys, args=call.args)
            else:
                reply = await self._pipeliner.call(script, call.keys, call.args)
        return call.decode(reply)

    async def _reserve_batch(
        self, product_id: int, requests: Sequence[calls.PreparedReserve]
    ) -> list[Hold | EngineError]:
        return await self._run(calls.reserve_batch(product_id, requests, self.hold_ttl_ms))

    async def set_stock(
        self,
        product_id: int,
        total: int,
        *,
        price_cents: int = 0,
        max_per_customer: int = 0,
        starts_at_ms: int | None = None,
        ends_at_ms: int | None = None,
    ) -> StockChange:
        change = await self._run(
            calls.set_stock(
                product_id,
                total,
                price_cents=price_cents,
                max_per_customer=max_per_customer,
                starts_at_ms=starts_at_ms,
                ends_at_ms=ends_at_ms,
            )
        )
        with unavailable_as_engine_error():
            await self.redis.sadd(PRODUCTS_KEY, product_id)
        return change

    async def reserve(
        self,
        product_id: int,
        quantity: int,
        *,
        customer_id: str | None = None,
        hold_id: str | None = None,
        idempotency_key: str | None = None,
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
                )
            )
        request = calls.reserve_request(
            product_id, quantity, customer_id=customer_id, hold_id=hold_id, idempotency_key=idempotency_key
        )
        return await self._coalescer.submit(product_id, request)

    async def reserve_many(self, product_id: int, requests: Sequence[ReserveRequest]) -> list[Hold | EngineError]:
        """Several reserves of one product in one script call: each a Hold, or the error it met, in order."""
        return await self._reserve_batch(product_id, prepare(product_id, requests))

    async def release(self, hold_id: str) -> Hold:
        return await self._run(calls.release(hold_id))

    async def hold(self, hold_id: str) -> Hold:
        return await self._run(calls.hold_status(hold_id))

    async def convert(self, hold_id: str, *, order_id: str | None = None) -> Order:
        return await self._run(calls.convert(hold_id, self.order_ttl_ms, order_id))

    async def settle(self, order_id: str, transaction_id: str, result: PaymentResult, payload: str = "") -> Settlement:
        return await self._run(calls.settle(order_id, transaction_id, result, payload))

    async def cancel(self, order_id: str, reason: CancelReason = "cancelled") -> Cancellation:
        return await self._run(calls.cancel(order_id, reason))

    async def order(self, order_id: str) -> Order:
        return await self._run(calls.order_status(order_id))

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
        with unavailable_as_engine_error():
            await self.redis.sadd(PRODUCTS_KEY, product_id)
        return change

    async def product_ids(self) -> list[int]:
        with unavailable_as_engine_error():
            return decode_product_ids(await self.redis.smembers(PRODUCTS_KEY))

    async def read_outbox(self, product_id: int, count: int = 1000) -> list[OutboxEvent]:
        with unavailable_as_engine_error():
            reply = await self.redis.xrange(product_keys(product_id).outbox, count=count)
        return decode_entries(product_id, reply)

    async def ack_outbox(self, product_id: int, entry_ids: Sequence[str]) -> int:
        if not entry_ids:
            return 0
        with unavailable_as_engine_error():
            return int(await self.redis.xdel(product_keys(product_id).outbox, *entry_ids))

    async def outbox_backlog(self, product_id: int) -> int:
        with unavailable_as_engine_error():
            return int(await self.redis.xlen(product_keys(product_id).outbox))

    async def stats(self, product_id: int) -> dict[str, int]:
        """Running counts kept by the scripts (holds, refusals, expiries, orders, payments, duplicates)."""
        with unavailable_as_engine_error():
            raw = await self.redis.hgetall(product_keys(product_id).product)
        return decode_stats(raw)
