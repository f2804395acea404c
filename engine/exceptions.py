"""Engine errors, and the driver's errors that mean the engine is unavailable.

Each engine error carries its data and a stable ``code`` that the API maps to HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from redis import exceptions as redis_errors


class EngineError(Exception):
    code = "engine_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ProductRuleError(ValueError):
    """A product's field breaks one of ``engine.product_rules``: ``field`` names it, ``reason`` says how. A bad
    argument, as ValueError says, not an engine error: the admin API answers it field by field, in its 422."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class EventUnreadable(ValueError):
    """An outbox event this version cannot read (engine.outbox): ``reason`` names the field and says why. The drain
    reports it with its entry, as ``persistence.exceptions.MalformedEvent``."""

    code = "event_unreadable"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EngineUnavailable(EngineError):
    """Redis did not answer; raised from the driver's ConnectionError or TimeoutError."""

    code = "engine_unavailable"


class NotReplicated(EngineUnavailable):
    """The write reached the primary, but not the replicas it must reach before it is answered (or the primary
    refused it: too few replicas, ``min-replicas-to-write``). It may or may not survive a failover; a retry with
    the same ids completes or replays it."""

    code = "not_replicated"

    def __init__(
        self, wanted: int | None, confirmed: int | None, timeout_ms: int | None, reason: str | None = None
    ) -> None:
        if wanted is None:
            message = f"the primary refused the write: {reason}"
        else:
            message = f"{confirmed} of {wanted} replicas confirmed the write within {timeout_ms} ms"
            if reason:
                message += f" ({reason})"
        super().__init__(message)
        self.wanted = wanted
        self.confirmed = confirmed
        self.timeout_ms = timeout_ms


class InvalidId(EngineError, ValueError):
    code = "invalid_id"

    def __init__(self, value: str, kind: str) -> None:
        super().__init__(f"not a valid {kind} id: {value!r}")
        self.value = value
        self.kind = kind


class ProductNotFound(EngineError):
    code = "product_not_found"

    def __init__(self, product_id: int) -> None:
        super().__init__(f"product {product_id} does not exist")
        self.product_id = product_id


class OutOfStock(EngineError):
    code = "out_of_stock"

    def __init__(self, product_id: int, requested: int, available: int) -> None:
        super().__init__(f"product {product_id}: {requested} requested, {available} available")
        self.product_id = product_id
        self.requested = requested
        self.available = available


class LimitExceeded(EngineError):
    code = "limit_exceeded"

    def __init__(self, product_id: int, customer_id: str, limit: int, used: int, requested: int) -> None:
        super().__init__(
            f"product {product_id}: customer {customer_id!r} has {used} of {limit} units, asked for {requested}"
        )
        self.product_id = product_id
        self.customer_id = customer_id
        self.limit = limit
        self.used = used
        self.requested = requested


class SaleNotActive(EngineError):
    code = "sale_not_active"

    def __init__(self, product_id: int, starts_at_ms: int, ends_at_ms: int, now_ms: int) -> None:
        super().__init__(f"product {product_id} is not on sale now")
        self.product_id = product_id
        self.starts_at_ms = starts_at_ms
        self.ends_at_ms = ends_at_ms
        self.now_ms = now_ms


class AdmissionRequired(EngineError):
    """A product with a waiting room sells only to an admitted ticket: ``reason`` is missing, invalid,
    expired or used."""

    code = "admission_required"

    def __init__(self, product_id: int, reason: str) -> None:
        super().__init__(f"product {product_id} has a waiting room: holds need a valid admission ({reason})")
        self.product_id = product_id
        self.reason = reason


class WaitingRoomOff(EngineError):
    code = "waiting_room_off"

    def __init__(self, product_id: int) -> None:
        super().__init__(f"product {product_id} has no waiting room")
        self.product_id = product_id


class TicketNotFound(EngineError):
    code = "ticket_not_found"

    def __init__(self, ticket: str) -> None:
        super().__init__(f"ticket {ticket} does not exist")
        self.ticket = ticket


class StockBelowCommitted(EngineError):
    code = "stock_below_committed"

    def __init__(self, product_id: int, requested: int, committed: int) -> None:
        super().__init__(
            f"product {product_id}: stock {requested} is below the {committed} units held, pending or sold"
        )
        self.product_id = product_id
        self.requested = requested
        self.committed = committed


class OutboxNotEmpty(EngineError):
    code = "outbox_not_empty"

    def __init__(self, product_id: int, backlog: int) -> None:
        super().__init__(f"product {product_id}: drain the {backlog} outbox events first")
        self.product_id = product_id
        self.backlog = backlog


class OutboxMoved(EngineError):
    """An event was appended to the outbox after the mark a restore was given: its snapshot may miss it."""

    code = "outbox_moved"

    def __init__(self, product_id: int, mark: str, last_id: str) -> None:
        super().__init__(f"product {product_id}: the outbox moved from {mark} to {last_id} since the snapshot")
        self.product_id = product_id
        self.mark = mark
        self.last_id = last_id


class HoldError(EngineError):
    def __init__(self, hold_id: str, message: str) -> None:
        super().__init__(message)
        self.hold_id = hold_id


class HoldNotFound(HoldError):
    code = "hold_not_found"

    def __init__(self, hold_id: str) -> None:
        super().__init__(hold_id, f"hold {hold_id} does not exist")


class HoldExpired(HoldError):
    code = "hold_expired"

    def __init__(self, hold_id: str, expired_at_ms: int) -> None:
        super().__init__(hold_id, f"hold {hold_id} expired")
        self.expired_at_ms = expired_at_ms


class HoldAlreadyUsed(HoldError):
    code = "hold_already_used"

    def __init__(self, hold_id: str, order_id: str | None) -> None:
        super().__init__(hold_id, f"hold {hold_id} was already turned into an order")
        self.order_id = order_id


class HoldReleased(HoldError):
    code = "hold_released"

    def __init__(self, hold_id: str) -> None:
        super().__init__(hold_id, f"hold {hold_id} was released")


class OrderNotFound(EngineError):
    code = "order_not_found"

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id} does not exist")
        self.order_id = order_id


class TransactionReused(EngineError):
    """The transaction id already belongs to another order, on this product or any other.

    ``claimed_by`` names that order for the logs; the API never shows it to the caller.
    """

    code = "transaction_id_reused"

    def __init__(self, transaction_id: str, order_id: str, claimed_by: str) -> None:
        super().__init__(f"transaction {transaction_id!r} was already used for another order")
        self.transaction_id = transaction_id
        self.order_id = order_id
        self.claimed_by = claimed_by


class OrderNotPending(EngineError):
    code = "order_not_pending"

    def __init__(self, order_id: str, status: str) -> None:
        super().__init__(f"order {order_id} is {status}")
        self.order_id = order_id
        self.status = status


UNAVAILABLE: tuple[type[Exception], ...] = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ClusterDownError,
    redis_errors.TryAgainError,
    redis_errors.MasterDownError,
    OSError,
)
"""The driver's errors that mean Redis did not answer: the engine raises EngineUnavailable from them."""


_FAILOVER_CODE = re.compile(r"(?:^|-)(NOREPLICAS|READONLY|LOADING|MASTERDOWN)\b")
"""An error code at the start of a reply, or, from a script on Redis before 7, after the ``-`` that ends the
``Error running script (...): @user_script:N:`` prefix."""


def reply_error(error: redis_errors.ResponseError) -> EngineError | None:
    """The engine error a Redis error reply means, or None for one that is a bug (a 500).

    ``NOREPLICAS``: the primary refuses writes while too few replicas are connected (``min-replicas-to-write``).
    ``READONLY``: the server is a replica now (a failover demoted it). The cluster's redirections and
    ``CLUSTERDOWN``: the slot is moving to another node. ``LOADING``, ``MASTERDOWN``: the server is not ready.
    """
    text = str(error)
    found = _FAILOVER_CODE.search(text)
    code = found.group(1) if found else None
    if code == "NOREPLICAS":
        return NotReplicated(None, None, None, reason=text)
    if code == "READONLY" or isinstance(
        error, redis_errors.ReadOnlyError | redis_errors.AskError | redis_errors.ClusterDownError
    ):
        return EngineUnavailable(f"Redis is failing over: {text}")
    if code is not None or isinstance(error, redis_errors.TryAgainError):
        return EngineUnavailable(f"Redis is not ready: {text}")
    return None


@contextmanager
def unavailable_as_engine_error() -> Iterator[None]:
    """Turn driver connection failures into EngineUnavailable at the engine's boundary, and the error replies
    of a failover (a replica now, too few replicas) into the engine errors they mean (``reply_error``)."""
    try:
        yield
    except UNAVAILABLE as error:
        raise EngineUnavailable(f"Redis is unavailable: {error}") from error
    except redis_errors.ResponseError as error:
        translated = reply_error(error)
        if translated is None:
            raise
        raise translated from error
