"""The synchronous engine: one method per script, over a redis-py ``Redis`` or ``RedisCluster``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar, cast

from redis.cluster import RedisCluster

from engine import calls
from engine.client_base import EngineBase
from engine.exceptions import EngineError, unavailable_as_engine_error
from engine.keys import PRODUCTS_KEY, product_keys
from engine.plain_replies import decode_entries, decode_product_ids, decode_stats
from engine.replication import Acknowledger, waits
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


class Engine(EngineBase):
    def __init__(self, redis: Any, **settings: Any) -> None:
        super().__init__(redis, **settings)
        self._acker = Acknowledger(redis, self.ack) if self.ack is not None else None

    def _run(self, call: calls.Call[T]) -> T:
        script = self._scripts[call.script]
        with unavailable_as_engine_error():
            if self._acker is not None and waits(call.script):
                (reply,) = self._acker.scripts([(script, call.keys, call.args, True)])
                if isinstance(reply, Exception):
                    raise reply
            else:
                reply = script(keys=call.keys, args=call.args)
        return call.decode(reply)

    def _add_product(self, product_id: int) -> None:
        with unavailable_as_engine_error():
            if self._acker is not None:
                self._acker.command(PRODUCTS_KEY, "SADD", PRODUCTS_KEY, product_id)
            else:
                self.redis.sadd(PRODUCTS_KEY, product_id)

    def set_stock(
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
        change = self._run(
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
        self._add_product(product_id)
        return change

    def reserve(
        self,
        product_id: int,
        quantity: int,
        *,
        customer_id: str | None = None,
        hold_id: str | None = None,
        idempotency_key: str | None = None,
        admission: str | None = None,
    ) -> Hold:
        return self._run(
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

    def reserve_many(self, product_id: int, requests: Sequence[ReserveRequest]) -> list[Hold | EngineError]:
        """Several reserves of one product in one script call: each a Hold, or the error it met, in order."""
        return self._run(calls.reserve_batch(calls.prepare(product_id, requests), self.hold_ttl_ms))

    def reserve_across(self, requests: Sequence[ProductReserve]) -> list[Hold | EngineError]:
        """Reserves of several products: one script call on one Redis, one per hash slot on a cluster. Each answer
        is a Hold, or the error it met, in the order of ``requests``."""
        prepared = calls.prepare_across(requests)
        groups = calls.by_slot(prepared) if isinstance(self.redis, RedisCluster) else [list(range(len(prepared)))]
        results: list[Hold | EngineError | None] = [None] * len(prepared)
        for group in groups:
            answered = self._run(calls.reserve_batch([prepared[i] for i in group], self.hold_ttl_ms))
            for i, result in zip(group, answered, strict=True):
                results[i] = result
        return cast(list[Hold | EngineError], results)

    def release(self, hold_id: str, *, owner: str | None = None) -> Hold:
        """``owner``: the verified buyer asking; another's hold is HoldNotFound and stays as it is."""
        return self._run(calls.release(hold_id, owner))

    def hold(self, hold_id: str, *, owner: str | None = None) -> Hold:
        return self._run(calls.hold_status(hold_id, owner))

    def convert(self, hold_id: str, *, order_id: str | None = None, owner: str | None = None) -> Order:
        return self._run(calls.convert(hold_id, self.order_ttl_ms, order_id, owner))

    def settle(self, order_id: str, transaction_id: str, result: PaymentResult, payload: str = "") -> Settlement:
        return self._run(calls.settle(order_id, transaction_id, result, payload))

    def processing(self, order_id: str, transaction_id: str, grace_ms: int) -> PaymentProcessing:
        """A payment under way: a pending order's expiry moves, once, to ``grace_ms`` from now."""
        return self._run(calls.processing(order_id, transaction_id, grace_ms))

    def claim_transaction(self, transaction_id: str, order_id: str, mode: ClaimMode = "claim") -> TransactionClaim:
        """Bind a transaction id to one order for the whole sale; TransactionReused if another order holds it."""
        marked = not isinstance(self.redis, RedisCluster)
        return self._run(calls.claim_transaction(transaction_id, order_id, mode, marked=marked))

    def release_transaction(self, transaction_id: str, order_id: str) -> bool:
        """Give back the order's claim of a transaction id (the order exists nowhere)."""
        return self._run(calls.release_transaction(transaction_id, order_id))

    def count_refund(self, product_id: int) -> None:
        """Count a refund found outside the scripts (a payment for an order Redis no longer keeps)."""
        with unavailable_as_engine_error():
            self.redis.hincrby(product_keys(product_id).product, "n_refund_required", 1)

    def cancel(self, order_id: str, reason: CancelReason = "cancelled", *, owner: str | None = None) -> Cancellation:
        """``owner``: the verified buyer asking; another's order is OrderNotFound and stays as it is."""
        return self._run(calls.cancel(order_id, reason, owner))

    def order(self, order_id: str, *, owner: str | None = None) -> Order:
        return self._run(calls.order_status(order_id, owner))

    def order_states(self, product_id: int, order_ids: Sequence[str]) -> dict[str, OrderStatus | None]:
        """The stored status of each order (None: unknown to the engine), in calls of at most 1,000; changes nothing."""
        states: dict[str, OrderStatus | None] = {}
        for start in range(0, len(order_ids), calls.MAX_ORDER_STATES):
            chunk = order_ids[start : start + calls.MAX_ORDER_STATES]
            found: dict[str, OrderStatus | None] = self._run(calls.order_states(product_id, chunk))
            states.update(found)
        return states

    def reap(self, product_id: int, batch: int = calls.REAP_BATCH) -> ReapResult:
        return self._run(calls.reap(product_id, batch))

    def snapshot(self, product_id: int) -> Snapshot:
        return self._run(calls.snapshot(product_id))

    def outbox_mark(self, product_id: int) -> OutboxMark:
        """Read before the snapshot a ``restore`` applies; the restore is refused if the outbox moved since."""
        return self._run(calls.outbox_mark(product_id))

    def restore(
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
        change = self._run(
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
        self._add_product(product_id)
        return change

    def product_ids(self) -> list[int]:
        with unavailable_as_engine_error():
            return decode_product_ids(self.redis.smembers(PRODUCTS_KEY))

    def read_outbox(self, product_id: int, count: int = 1000) -> list[OutboxEvent]:
        """The oldest ``count`` events; with ``ack``, only once the replicas have them (NotReplicated if not), so
        that nothing reaches PostgreSQL that a failover could take from Redis."""
        key = product_keys(product_id).outbox
        with unavailable_as_engine_error():
            if self._acker is not None:
                reply = self._acker.command(key, "XRANGE", key, "-", "+", "COUNT", count)
            else:
                reply = self.redis.xrange(key, count=count)
        return decode_entries(product_id, reply)

    def ack_outbox(self, product_id: int, entry_ids: Sequence[str]) -> int:
        if not entry_ids:
            return 0
        with unavailable_as_engine_error():
            return int(self.redis.xdel(product_keys(product_id).outbox, *entry_ids))

    def outbox_backlog(self, product_id: int) -> int:
        with unavailable_as_engine_error():
            return int(self.redis.xlen(product_keys(product_id).outbox))

    def stats(self, product_id: int) -> dict[str, int]:
        """Running counts kept by the scripts (holds, refusals, expiries, orders, payments, duplicates)."""
        with unavailable_as_engine_error():
            raw = self.redis.hgetall(product_keys(product_id).product)
        return decode_stats(raw)

    def queue_join(self, product_id: int, buyer: str | None = None) -> Ticket:
        """Join the product's waiting room (WaitingRoomOff if it has none); ``buyer``: a verified buyer, whose
        second join finds the same ticket."""
        return self._run(calls.queue_join(product_id, buyer))

    def queue_poll(self, ticket: str, owner: str | None = None) -> Ticket:
        """Where the ticket stands; polling keeps it in the room and admits the next waiters. ``owner``: the
        verified buyer asking (another buyer's ticket is TicketNotFound)."""
        return self._run(calls.queue_poll(ticket, owner))

    def queue_leave(self, ticket: str, owner: str | None = None) -> TicketState:
        return self._run(calls.queue_leave(ticket, owner))

    def queue_info(self, product_id: int) -> WaitingRoom:
        return self._run(calls.queue_info(product_id))
