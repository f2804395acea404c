"""A payment, sale-wide: claim its transaction id, ask PostgreSQL only when Redis has no record of the id,
then settle it on the order's product (or record it in PostgreSQL when Redis no longer keeps the order).

The steps, each idempotent by the transaction id and the order id, so that a retry of the same webhook
completes whatever a crash left undone:

1. ``claim_transaction`` binds the id to the order in one sale-wide key (any Redis Cluster shard). Another
   order's claim refuses it: ``transaction_id_reused``.
2. Only when the claim is not yet confirmed (Redis had no record of the id: new, past its retention, or lost
   with Redis), PostgreSQL's ``payments`` decides: the id recorded for another order refuses it (and Redis
   records that verdict), recorded for this order makes the webhook a duplicate. PostgreSQL unreachable (or
   slower than ``CHECK_TIMEOUT_SECONDS``): Redis decides alone, the drain keeps any conflict that slips
   through (``payment_conflicts``) and reconcile reports it.
3. ``settle`` applies the result on the order's product, at most once per transaction id.
4. After a clean answer from PostgreSQL, the claim is confirmed in the background, off the webhook's path:
   later deliveries then need no PostgreSQL read. Every step a webhook waits for costs a round trip under
   load (bench: purchases), so the optional one is not waited for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

import sqlalchemy as sa

from api import threadpool
from api.errors import DatabaseUnavailable, OrderStateUnknown
from api.metrics import TRANSACTIONS_REUSED
from engine import AsyncEngine, outbox
from engine import exceptions as engine_errors
from engine.coalesce import Coalescer
from engine.log_fields import order_log_fields, refund_log_fields
from engine.types import Order, OrderStatus, OutboxEvent, PaymentResult, Settlement
from persistence.conflicts import log_conflicts
from persistence.order_reads import (
    PaymentRecord,
    ProcessingRecord,
    get_order,
    get_payment,
    payments_by_transaction,
    processing_by_transaction,
    recorded_transaction_ids,
)
from persistence.order_writes import apply_events
from shared import logs
from shared.settings import DEFAULT_PAYMENT_GRACE_SECONDS

log = logs.get_logger("api.payments")

CHECK_TIMEOUT_SECONDS = 1.0
"""How long a webhook waits for PostgreSQL's record of a transaction id before Redis decides alone."""
LOOKUP_BATCH = 256
VOUCH_EVERY_SECONDS = 10.0
"""How often at most the claim store is vouched for (``AsyncEngine.vouch_claims``) while Redis cannot decide."""
VOUCH_LIMIT = 200_000
"""Past this many recorded transaction ids, the claim store is not vouched for: each webhook asks PostgreSQL."""


@dataclass(frozen=True)
class Outcome:
    """What the webhook answers."""

    order_id: str
    status: OrderStatus
    applied: bool
    duplicate: bool
    refund_required: bool
    revived: bool = False
    expires_at_ms: int | None = None
    """For ``processing``: the order's expiry now (None when only PostgreSQL answered)."""


class _Unknown:
    """PostgreSQL could not say (down, or slower than CHECK_TIMEOUT_SECONDS)."""


UNKNOWN = _Unknown()


class Settler:
    def __init__(
        self, engine: AsyncEngine, db: sa.Engine, *, grace_ms: int = DEFAULT_PAYMENT_GRACE_SECONDS * 1000
    ) -> None:
        self.engine = engine
        self.db = db
        self.grace_ms = grace_ms
        self._confirming: set[asyncio.Task[None]] = set()
        self._vouched_at = -VOUCH_EVERY_SECONDS
        # Concurrent webhooks share one PostgreSQL read (and one worker thread) for their transaction ids.
        self._lookups: Coalescer[str, PaymentRecord | ProcessingRecord | None] = Coalescer(
            self._lookup, max_batch=LOOKUP_BATCH, max_in_flight=2
        )

    async def close(self) -> None:
        """Wait for the claims still being confirmed, and the claim store being vouched for."""
        if self._confirming:
            await asyncio.gather(*self._confirming, return_exceptions=True)

    async def pay(self, order_id: str, transaction_id: str, result: PaymentResult, payload: str) -> Outcome:
        """Apply one payment; raises TransactionReused, OrderNotFound, OrderStateUnknown, or an outage."""
        try:
            claim = await self.engine.claim_transaction(transaction_id, order_id)
        except engine_errors.TransactionReused as reused:
            self._refuse(reused)
        known: PaymentRecord | ProcessingRecord | _Unknown | None = None
        if not claim.confirmed:
            self._vouch_later()
            known = await self._recorded(transaction_id)
            await self._refuse_if_bound_elsewhere(known, transaction_id, order_id)
            if isinstance(known, PaymentRecord):  # Redis forgot it; PostgreSQL has it for this very order
                self._confirm_later(transaction_id, order_id)
                return await self._duplicate_from_database(known)
        try:
            settlement = await self.engine.settle(order_id, transaction_id, result, payload)
        except engine_errors.OrderNotFound:
            recorded = None if isinstance(known, ProcessingRecord) else known
            return await self._from_database(order_id, transaction_id, result, payload, recorded)
        if not claim.confirmed and (known is None or isinstance(known, ProcessingRecord)):
            self._confirm_later(transaction_id, order_id)  # the order exists: a release can never follow
        log_settlement(settlement)
        order = settlement.order
        return Outcome(
            order.order_id,
            order.status,
            settlement.applied,
            settlement.duplicate,
            settlement.refund_required,
            settlement.revived,
        )

    async def processing(self, order_id: str, transaction_id: str) -> Outcome:
        """A payment under way: hold the order for the payment grace, once (the id is claimed for the order, so
        its result later finds it bound); raises TransactionReused, OrderNotFound, or an outage."""
        try:
            claim = await self.engine.claim_transaction(transaction_id, order_id)
        except engine_errors.TransactionReused as reused:
            self._refuse(reused)
        if not claim.confirmed:  # Redis may have forgotten the id (restarted empty): PostgreSQL knows its order
            await self._refuse_if_bound_elsewhere(await self._recorded(transaction_id), transaction_id, order_id)
        try:
            done = await self.engine.processing(order_id, transaction_id, self.grace_ms)
        except engine_errors.OrderNotFound:
            record = await threadpool.call(get_order, self.db, order_id)
            if record is None:
                await self.engine.release_transaction(transaction_id, order_id)
                raise
            if record.status == "pending":
                raise OrderStateUnknown(order_id) from None
            return Outcome(order_id, record.status, False, False, False, record.revived, None)
        order = done.order
        if done.extended:
            log.info(
                logs.PAYMENT_PROCESSING,
                order_id=order.order_id,
                transaction_id=transaction_id,
                product_id=order.product_id,
                expires_at_ms=order.expires_at_ms,
            )
        elif done.duplicate:
            log.info(logs.DUPLICATE_WEBHOOK_IGNORED, order_id=order.order_id, transaction_id=transaction_id)
        return Outcome(
            order.order_id, order.status, done.extended, done.duplicate, False, order.revived, order.expires_at_ms
        )

    def _refuse(self, reused: engine_errors.TransactionReused) -> NoReturn:
        TRANSACTIONS_REUSED.inc()
        log.warning(
            logs.TRANSACTION_ID_REUSED,
            transaction_id=reused.transaction_id,
            order_id=reused.order_id,
            claimed_by=reused.claimed_by,
        )
        raise reused

    async def _refuse_if_bound_elsewhere(
        self, known: PaymentRecord | ProcessingRecord | _Unknown | None, transaction_id: str, order_id: str
    ) -> None:
        """PostgreSQL binds the id to another order (its payment, or its ``processing``): remember it and refuse."""
        if isinstance(known, PaymentRecord | ProcessingRecord) and known.order_id != order_id:
            await self._record(transaction_id, known.order_id)
            self._refuse(engine_errors.TransactionReused(transaction_id, order_id, known.order_id))

    async def _lookup(self, _: int, transaction_ids: Sequence[str]) -> list[PaymentRecord | ProcessingRecord | None]:
        found = await threadpool.call(_bound_transactions, self.db, transaction_ids)
        return [found.get(txn) for txn in transaction_ids]

    async def _recorded(self, transaction_id: str) -> PaymentRecord | ProcessingRecord | _Unknown | None:
        try:
            return await asyncio.wait_for(self._lookups.submit(0, transaction_id), CHECK_TIMEOUT_SECONDS)
        except (DatabaseUnavailable, TimeoutError):
            log.warning(logs.TRANSACTION_CHECK_SKIPPED, transaction_id=transaction_id)
            return UNKNOWN

    def _vouch_later(self) -> None:
        """Redis could not decide: in the background, and at most every VOUCH_EVERY_SECONDS, check whether every id
        PostgreSQL records is claimed in Redis, and if so mark the claim store complete. While the mark counts, the
        claim script confirms a new id at once, and a webhook needs no PostgreSQL read (engine/keys.py)."""
        now = time.monotonic()
        if now - self._vouched_at < VOUCH_EVERY_SECONDS:
            return
        self._vouched_at = now
        task = asyncio.get_running_loop().create_task(self._vouch())
        self._confirming.add(task)
        task.add_done_callback(self._confirming.discard)

    async def _vouch(self) -> None:
        try:
            recorded = await threadpool.call(recorded_transaction_ids, self.db, VOUCH_LIMIT)
            lifetime = None if recorded is None else await self.engine.vouch_claims(recorded)
        except (DatabaseUnavailable, engine_errors.EngineError) as error:
            log.warning(logs.CLAIMS_NOT_VOUCHED, reason="unavailable", error=str(error))
            return
        if lifetime is None:
            reason = "too_many_recorded" if recorded is None else "cannot_vouch"
            log.info(logs.CLAIMS_NOT_VOUCHED, reason=reason, recorded=None if recorded is None else len(recorded))
        else:
            log.info(logs.CLAIMS_VOUCHED, recorded=len(recorded or ()), lifetime_ms=lifetime)

    def _confirm_later(self, transaction_id: str, order_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._confirm(transaction_id, order_id))
        self._confirming.add(task)
        task.add_done_callback(self._confirming.discard)

    async def _confirm(self, transaction_id: str, order_id: str) -> None:
        """Mark the claim confirmed: only saves later deliveries a PostgreSQL read, so a failure is logged."""
        try:
            await self.engine.claim_transaction(transaction_id, order_id, "confirm")
        except engine_errors.EngineError as error:
            log.warning("transaction_confirm_failed", transaction_id=transaction_id, error=str(error))

    async def _record(self, transaction_id: str, owner: str) -> None:
        """Let Redis remember PostgreSQL's verdict, so that later deliveries are refused without asking again."""
        try:
            await self.engine.claim_transaction(transaction_id, owner, "record")
        except engine_errors.EngineError as error:
            log.warning("transaction_record_failed", transaction_id=transaction_id, error=str(error))

    async def _duplicate_from_database(self, known: PaymentRecord) -> Outcome:
        record = await threadpool.call(get_order, self.db, known.order_id)
        log.info(logs.DUPLICATE_WEBHOOK_IGNORED, order_id=known.order_id, transaction_id=known.transaction_id)
        status: OrderStatus = (
            record.status if record is not None else ("paid" if known.status == "success" else "cancelled")
        )
        return Outcome(known.order_id, status, known.applied, True, known.refund_required)

    async def _from_database(
        self,
        order_id: str,
        transaction_id: str,
        result: PaymentResult,
        payload: str,
        known: PaymentRecord | _Unknown | None,
    ) -> Outcome:
        """The engine no longer keeps the order (closed over a day ago, or lost): PostgreSQL answers."""
        if known is None or isinstance(known, _Unknown):
            known = await threadpool.call(get_payment, self.db, transaction_id)
        if known is not None:
            if known.order_id != order_id:
                self._refuse(engine_errors.TransactionReused(transaction_id, order_id, known.order_id))
            return await self._duplicate_from_database(known)
        record = await threadpool.call(get_order, self.db, order_id)
        if record is None:
            # No such order anywhere: free the id for the order it really pays.
            await self.engine.release_transaction(transaction_id, order_id)
            raise engine_errors.OrderNotFound(order_id)
        if record.status == "pending":
            raise OrderStateUnknown(order_id)
        refund = result == "success"  # the order is paid (by another transaction) or cancelled
        applied = await threadpool.call(apply_events, self.db, [late_payment(record, transaction_id, result, payload)])
        log_conflicts(applied.conflicts)
        where = {"order_id": order_id, "transaction_id": transaction_id, "product_id": record.product_id}
        log.warning("payment_not_applied", result=result, order_status=record.status, **where)
        if refund:
            await self.engine.count_refund(record.product_id)
            log.warning(logs.REFUND_REQUIRED, **refund_log_fields(record, transaction_id))
        return Outcome(order_id, record.status, False, False, refund)


def _bound_transactions(db: sa.Engine, transaction_ids: Sequence[str]) -> dict[str, PaymentRecord | ProcessingRecord]:
    """What PostgreSQL binds each id to: its payment, or else the order whose payment grace its ``processing`` used."""
    found: dict[str, PaymentRecord | ProcessingRecord] = dict(payments_by_transaction(db, transaction_ids))
    rest = [txn for txn in transaction_ids if txn not in found]
    if rest:
        found.update(processing_by_transaction(db, rest))
    return found


def log_settlement(s: Settlement) -> None:
    order = s.order
    where = {"order_id": order.order_id, "transaction_id": s.transaction_id, "product_id": order.product_id}
    if s.duplicate:
        log.info(logs.DUPLICATE_WEBHOOK_IGNORED, result=s.result, order_status=order.status, **where)
    elif s.revived:
        log.info(logs.ORDER_REVIVED, **order_log_fields(order), transaction_id=s.transaction_id)
    elif s.applied and s.result == "success":
        log.info(logs.PAYMENT_SUCCESS, **order_log_fields(order), transaction_id=s.transaction_id)
    elif s.applied:
        log.info(logs.ORDER_CANCELLED, reason="payment_failed", quantity=order.quantity, **where)
    else:
        log.warning("payment_not_applied", result=s.result, order_status=order.status, **where)
    if s.refund_required and not s.duplicate:
        log.warning(logs.REFUND_REQUIRED, **refund_log_fields(order, s.transaction_id))


def late_payment(order: Order, transaction_id: str, result: PaymentResult, payload: str) -> OutboxEvent:
    """A ``payment`` event for an order the engine has forgotten (closed over a day ago), never applied.

    The engine cannot write it, having no record of the order, so the API hands it to the same writer
    the outbox drain uses: the payment is in PostgreSQL before the provider is told it was received.
    """
    payment = outbox.Payment(
        transaction_id, result, applied=False, refund_required=result == "success", payload=payload
    )
    return outbox.payment_event(order, payment, int(time.time() * 1000))
