"""Structured logs: one JSON object per line in production, readable lines in a terminal.

Events that operators search for have fixed names (the seed's tags), listed here once.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from shared.settings import LogFormat

PAYMENT_SUCCESS = "payment_success"
DUPLICATE_WEBHOOK_IGNORED = "duplicate_webhook_ignored"
OUT_OF_STOCK = "out_of_stock"
HOLD_RELEASED = "hold_released"
HOLD_EXPIRED = "hold_expired"
ORDER_CREATED = "order_created"
ORDER_CANCELLED = "order_cancelled"
REFUND_REQUIRED = "refund_required"
PRODUCT_PUT_FAILED = "product_put_failed"
TRANSACTION_ID_REUSED = "transaction_id_reused"
"""A webhook named a transaction id that already belongs to another order: refused with 409."""
TRANSACTION_CHECK_SKIPPED = "transaction_check_skipped"
"""PostgreSQL did not answer whether it knows a transaction id in time: Redis decided alone."""
CLAIMS_VOUCHED = "claims_vouched"
"""Every transaction id PostgreSQL records is claimed in Redis: new ids are decided by Redis alone for a while."""
CLAIMS_NOT_VOUCHED = "claims_not_vouched"
"""The claim store could not be vouched for (an id Redis forgot, too many, evictable keys): webhooks ask PostgreSQL."""
PAYMENT_CONFLICT = "payment_conflict"
"""A payment reached PostgreSQL with a transaction id recorded for another order: stored, reported by reconcile."""
WORKER_LOST_QUEUE = "worker_lost_queue"
SCHEDULER_LOST_QUEUE = "scheduler_lost_queue"
"""The queue's Redis failed under a worker or the scheduler (a failover): it starts again a second later."""
BUYER_TOKEN_REFUSED = "buyer_token_refused"
"""A buyer request without a valid buyer token (FLASHSALE_BUYER_AUTH=jwt): refused with 401, `reason` says why."""
RECONCILE_LOST_WRITES = "reconcile_lost_writes"
"""reconcile found writes PostgreSQL has and Redis lost (a failover without replicated acknowledgement)."""
PAYMENT_PROCESSING = "payment_processing"
"""A ``processing`` webhook moved a pending order's expiry to the payment grace (once per order)."""
ORDER_REVIVED = "order_revived"
"""A success after the order had expired unpaid took its units again: the order is paid after all."""
REFUND_REQUESTED = "refund_requested"
"""The drain recorded a refund request for a charge no order took."""
REFUND_SENT = "refund_sent"
REFUND_CONFIRMED = "refund_confirmed"
"""The provider's ``refunded`` webhook confirmed a refund request."""
MERCHANT_EVENT_DELIVERED = "merchant_event_delivered"
MERCHANT_DELIVERY_FAILED = "merchant_delivery_failed"
"""The merchant did not take an event (an error status, a timeout): it is tried again later."""
MERCHANT_EVENT_DEAD_LETTERED = "merchant_event_dead_lettered"
"""An event was not delivered before its deadline: ``flashsale deliveries --failed``, then ``retry``."""
QUEUE_LEFT = "queue_left"
"""A buyer left a product's waiting room (docs/waiting-room.md)."""
ADMISSION_REFUSED = "admission_refused"
"""A hold of a product with a waiting room came without a valid admission: 403 admission_required."""


_PROCESSORS: list[Any] = []
"""The process's one chain of processors, changed in place by every ``configure``. A logger caches the chain it
first logged with (``cache_logger_on_first_use``), so a second ``configure`` in the same process (a test run calls
several commands) that brought a new list would leave the loggers used before it on the old one, out of reach of
the new configuration and of ``structlog.testing.capture_logs``."""


def configure(log_format: LogFormat, level: int = logging.INFO) -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    _PROCESSORS[:] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        renderer,
    ]
    structlog.configure(
        processors=_PROCESSORS,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
